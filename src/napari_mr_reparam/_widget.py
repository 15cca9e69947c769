"""The napari widget: pick a volume and a model, drag TE/TR, see the prediction.

A magicgui :class:`~magicgui.widgets.Container` whose controls scripts and tests reach
by name: ``image``, ``model``, ``input_te``, ``input_tr``, ``te``, ``tr``,
``ground_truth``, ``device``, ``live``, ``run``, ``cancel``, ``progress``, ``status``,
``metrics`` and ``truth_hint``; ``preset`` (Custom or a named contrast, which sets the
sequence and the sliders) and ``input_preset`` (the same for the input's acquisition:
its sequence, TE, TR, TI and flip); for the physics model also ``sequence``, ``ti``, ``ti2``,
``flip``, ``consistency``, ``flip_average``, ``add_maps`` and ``add_input``, which adds a
row (:class:`~napari_mr_reparam._widget_controls.InputRow`, in ``inputs``) for another image of the same subject: with two or
more inputs the maps come from the joint fit (:mod:`~napari_mr_reparam.joint_fit`), the
input's own acquisition is then given in full (``input_sequence``, ``input_ti``,
``input_flip``), ``gain_per_input`` says whether the images carry one receiver gain (one
series) or one each (separate series), ``register`` whether each further image is first
registered onto the first (the head moved between series), and ``joint_status`` says
which parameters the inputs determine. Each job is one engine call
(:mod:`~napari_mr_reparam._widget_work`) in a napari ``thread_worker``
(:class:`~napari_mr_reparam._background.LatestJob`, as every piece of work longer than a
slice's render), which reports progress through the engine's ``progress`` callback and
stops at the engine's ``cancelled`` hook; torch is imported only when the first prediction
starts, so the widget opens quickly.

Dragging ``te``/``tr`` predicts the slice on screen (debounced; while a prediction runs
only the newest request is kept, so stale ones are dropped) and, once the sliders rest,
the whole volume. ``run`` predicts the whole volume at once; ``cancel`` stops it.
The physics model computes PD/T1/T2 maps once per input (cached per layer, model, input
TE/TR, data-consistency weight and flip averaging) and then renders from them: the slice
on screen while a slider moves (on the GUI thread, tens of milliseconds), the whole volume
once the sliders rest (in a worker thread).
The comparison with a ground truth follows the same split: the slice just previewed at
once, the whole volume in a worker thread. The output layers and that comparison live in
:class:`~napari_mr_reparam._widget_outputs.Outputs`.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FloatSlider, Label, ProgressBar, PushButton, create_widget,
)
from qtpy.QtCore import QEvent, QObject, QTimer

from . import DEFAULT_CONSISTENCY, DEFAULT_TE_MS, DEFAULT_TR_MS
from ._background import LatestJob
from ._widget_controls import (
    INPUT_SEQUENCE_CHOICES, SEQUENCE_CHOICES, InputRow, NoteLabel, NumberBox, compact, elide_start, in_scroll_area,
    label_on_top, say_typed_beyond, tab_in_layout_order, target_slider, wrap_text,
)
from ._widget_outputs import JOINT_MODEL, Outputs, bring_into_view, map_contrast_limits, placement
from ._widget_work import compute, with_range
from ._window_room import RoomWatch
from .devices import DEVICE_CHOICES
from .presets import get_input_preset
from .joint_result import PD_UNITS
from .memory import shortage
from .units import refuse_seconds
from .widget_logic import (
    CUSTOM, EngineCache, InputSpec, MapsCache, Request, determined_line, guessed_input_preset,
    guessed_line, image_refusal, input_from_metadata, input_refusal, input_times_to_type, joint_acquisitions,
    joint_job_units, matching_preset, one_gain_hint, preset_choices, preset_controls, preset_over_stated,
    preset_refusal, read_layers, registration_refusal, render_request, seconds_hint, stated_input_line,
    target_words, unmeasured_words,
)

if TYPE_CHECKING:
    import napari

MODEL_LABELS = {"d2p": "Default-to-Param", "p2p": "Param-to-Param", "physics": "Physics (quantitative maps)",
                "physics_mrilab": "Physics, trained on the MRiLab phantom"}


def model_choices() -> list[tuple[str, str]]:
    """The bundled models, the paper's first; extra weight sets appear under their name."""
    from .inference import known_models

    names = known_models() or ["d2p", "p2p"]
    order = [n for n in MODEL_LABELS if n in names] + [n for n in names if n not in MODEL_LABELS]
    return [(MODEL_LABELS.get(n, n), n) for n in order]


#: The time fields' least value (ms): low enough to type a time in seconds (TR 2.3), which
#: gets the hint the command line gives (:func:`~napari_mr_reparam.widget_logic.seconds_hint`).
SECONDS_FLOOR = 0.01
PREVIEW_DELAY_MS = 40     # debounce for the on-screen slice while dragging
VOLUME_DELAY_MS = 600     # sliders at rest this long -> whole volume
ROW_SPACING_PX = 2        # between the rows of the controls


#: The Input list's tooltip (after the name of the layer chosen, which the list may cut).
INPUT_TIP = "The scan to predict from (an image layer: a volume or one slice)"
#: The Device list's tooltip (and, after a run, what ran it).
DEVICE_TIP = "Where the model runs: auto takes the GPU when there is one"

#: The status line of a widget just opened, before anything else is said.
FIRST_HINT = ("Choose the Input, then a Preset or TE/TR: a slider move predicts the slice on screen; "
              "Run all slices predicts the whole volume")
#: The end of a status line that asks for the input's times where its metadata's were set aside.
TIMES_TO_TYPE = "type the input's times in ms where they show ?"


class ReparamWidget(Container):
    """Re-parameterize the selected image layer at the TE/TR set by the sliders."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        # napari passes the viewer to a parameter of this name (Plugins menu, npe2)
        # the controls sit in a scroll area (``body``), so a dock taller than the window scrolls;
        # Run, Cancel, progress, status and metrics (``footer``) stay below it, always in sight
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self._viewer = napari_viewer
        self._room = RoomWatch(self.native)  # once docked: the image keeps its room
        self._engines = EngineCache()
        self._maps = MapsCache()
        # the model's work: a newer request waits (replacing any waiting one); a result it
        # supersedes is still shown, its maps cached for the newer one
        self._predictions = LatestJob(self._on_result, self._on_error, on_start=self._on_started,
                                      on_progress=self._on_progress, on_finished=self._on_finished,
                                      keep_stale=True)
        self._renders = LatestJob(self._show_rendered, self._on_render_error)
        self._applying_preset = False
        self._said_of_input = ""  # what the status line said of the input chosen (_say_of_input)
        self._guessed_input = (None, None)  # (layer, input preset) its times were guessed as, by its look
        self._refusal = ""  # the refusal the status line shows, until a request is taken (_refuse)
        self._refused_while_due = ""  # a preset's refusal said while a run was due: that run keeps it
        self._render_when_fitted = None  # a request of the maps being fitted, at newer targets
        self._typed_field = None  # the field whose number typed beyond its range the warning line tells of
        self._joint_hint = ""  # how to fit the joint maps, as the status line last said it (_say_what_runs)
        self._adding_rows = False  # a series' rows being added (add_series_rows)
        self._input_layer = None  # the input's layer as last chosen (one closed is told apart)
        self._closed_input = ""  # the line saying the input was closed, until another is chosen
        self._closed_for = ""  # the name of an input closed, another image taking its place
        self._stated = ""  # the line saying what the input's file states it is (gives way to a joint hint)
        self._preset_refused = ""  # the line refusing a preset the model cannot render or read
        self._read_from: dict = {}  # per prediction job (by its request's id), the input data it reads
        self._maps_asked = None  # the request whose map layers are added once its maps are fitted
        self._make_controls()
        # the prediction and difference layers, and the comparison with the ground truth
        self._outputs = Outputs(self._viewer, self.image, self.ground_truth, self.metrics, self.truth_hint,
                                self._on_error)
        self._preview_timer = self._timer(PREVIEW_DELAY_MS, self._start_preview)
        self._volume_timer = self._timer(VOLUME_DELAY_MS, self._start_volume)
        self._connect()
        self._on_model_changed()
        self._take_image()
        if not self.status.value:  # the first view: what to do, until anything else is said
            self.status.value = FIRST_HINT

    # ------------------------------------------------------------------ controls
    def _make_controls(self) -> None:
        import napari

        self.image = create_widget(annotation=napari.layers.Image, label="Input")
        elide_start(self.image)  # "…TR 1000 ms, TI 50 ms": the end that tells a series' images apart
        self.model = ComboBox(choices=model_choices(), value="physics", label="Model")
        self.input_preset = ComboBox(choices=preset_choices(inputs=True), value=CUSTOM, label="Input preset",
                                     tooltip="How the input was acquired, by name (MPRAGE for most "
                                             "research T1-weighted scans): sets the input's sequence "
                                             "and times below, each still editable (editing one makes "
                                             "it Custom)")
        self.input_te = NumberBox(value=DEFAULT_TE_MS, min=0, max=5000, step=1, label="Input TE (ms)")
        self.input_tr = NumberBox(value=DEFAULT_TR_MS, min=0, max=20000, step=10, label="Input TR (ms)")
        self.input_sequence = ComboBox(choices=INPUT_SEQUENCE_CHOICES, value="spin_echo", label="Input sequence")
        self.input_ti = NumberBox(value=0, min=0, max=20000, step=10, label="Input TI (ms)")
        self.input_flip = NumberBox(value=0, min=0, max=180, step=1, label="Input flip (°)")
        for box in (self.input_te, self.input_tr, self.input_ti, self.input_flip):
            box.native.setSpecialValueText("?")  # 0: not known yet (a time the metadata lack, to type)
        self.inputs = Container(labels=False, label="More inputs")
        self.inputs.margins = (0, 0, 0, 0)
        self.add_input = PushButton(text="+ Add another image of this subject",
                                    tooltip="Two or more co-registered images with their own TE/TR/TI "
                                            "give joint PD/T1/T2 maps, fitted to all of them")
        self.add_series = PushButton(text="+ The other images of its series",
                                     tooltip="Every other echo or inversion time of the input's DICOM "
                                             "series or 4-D NIfTI file, each as a further input")
        self.gain_per_input = CheckBox(value=False, text="One gain per image (separate series)",
                                       tooltip="Images of separate series carry their own receiver "
                                               "gain: each image's is estimated against the "
                                               "network's maps. Leave off for images of one series "
                                               "(echoes or inversion times of one scan), which share it; "
                                               "left off, layers read from several files or folders, "
                                               "one of which gave several, take a gain per file or "
                                               "folder, found by the fit")
        self.register = CheckBox(value=False, text="Register onto the first image (head moved)",
                                 tooltip="The head moved between the scans: each further image is "
                                         "registered rigidly onto the first (mutual information, a "
                                         "few seconds each; NIfTI or DICOM volumes of 8 slices or more)")
        self.ideal_echoes = CheckBox(value=False, text="Echo trains as ideal exponentials",
                                     tooltip="Echoes of a multi-echo train are fitted with its phase graph "
                                             "(stimulated echoes, refocusing angle free) unless checked: "
                                             "then as exponentials, as predict --echo-train ideal does "
                                             "(on relaxometry phantoms whose T1 is near T2, the nearer fit)")
        self.joint_status = NoteLabel(value="", label="")
        self.preset = ComboBox(choices=preset_choices(), value=CUSTOM, label="Preset",
                               tooltip="A named contrast: sets the sequence and times below, each "
                                       "still editable (editing one makes it Custom)")
        self.te = target_slider(value=100.0, min=SECONDS_FLOOR, max=1500.0, step=1.0, label="TE (ms)")
        self.tr = target_slider(value=3000.0, min=SECONDS_FLOOR, max=15000.0, step=10.0, label="TR (ms)")
        self.sequence = ComboBox(choices=SEQUENCE_CHOICES, value="spin_echo", label="Sequence")
        self.ti = target_slider(value=2500.0, min=SECONDS_FLOOR, max=5000.0, step=10.0, label="TI (ms)")
        self.ti2 = target_slider(value=400.0, min=10.0, max=5000.0, step=5.0, label="TI2 (ms)",
                               tooltip="Double inversion recovery: the second, shorter inversion time")
        self.flip = target_slider(value=30.0, min=1.0, max=90.0, step=1.0, label="Flip angle (°)")
        self.consistency = FloatSlider(value=DEFAULT_CONSISTENCY, min=0.0, max=1.0, step=0.05,
                                       label="Data consistency",
                                       tooltip="How far the maps are moved to reproduce the input "
                                               "image at its own acquisition (PD, T1 and T2 for a "
                                               "spin echo, PD alone for other sequences; 0: the "
                                               "network's maps)")
        self.flip_average = CheckBox(value=False, text="Average maps with the mirror image",
                                     tooltip="Infer the maps from each slice and its left-right "
                                             "mirror and average them: twice the map time, "
                                             "reads unfamiliar anatomy a little better")
        self.add_maps = PushButton(text="Add PD, T1, T2 maps as layers")
        self.range_warning = NoteLabel(value="", label="")
        self.ground_truth = create_widget(annotation=napari.layers.Image, label="Ground truth",
                                          options={"nullable": True})
        self.device = ComboBox(choices=list(DEVICE_CHOICES), value="auto", label="Device")
        self.live = CheckBox(value=True, text="Live preview while dragging")
        self.run = PushButton(text="Run all slices")
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="Progress")
        self.status = Label(value="", label="Status")
        self.metrics = Label(value="", label="Metrics")
        self.truth_hint = NoteLabel(value="", label="")
        self._add_tooltips()
        self.body = Container(labels=True)
        self.body.extend([self.image, self.model, self.input_preset, self.input_te, self.input_tr, self.input_sequence,
                     self.input_ti, self.input_flip, self.inputs, self.add_input, self.add_series,
                     self.gain_per_input,
                     self.register, self.ideal_echoes, self.joint_status,
                     self.preset, self.sequence, self.te, self.tr, self.ti, self.ti2, self.flip,
                     self.consistency, self.flip_average, self.range_warning, self.ground_truth,
                     self.device, self.live, self.add_maps])
        # Run, Cancel, the progress and what is said stay in sight below the controls, however
        # far they scroll (several inputs' rows push the target's controls down)
        self.footer = Container(labels=True)
        self.footer.extend([self.run, self.cancel, self.progress, self.status, self.metrics, self.truth_hint])
        for part in (self.body, self.footer):
            part.native.layout().setSpacing(ROW_SPACING_PX)  # rows close, so a laptop's dock shows the metrics
        for label in (self.range_warning, self.joint_status, self.status, self.metrics, self.truth_hint):
            wrap_text(label)
        for combo in (self.image, self.ground_truth):
            compact(combo)
        label_on_top(self.inputs)  # "More inputs" at the first row, not halfway down a dozen
        self.append(self.body)
        self._scroll = in_scroll_area(self.body)
        self.append(self.footer)
        self.native.layout().addStretch()  # room to spare goes below, not between them

    def _timer(self, delay_ms: int, slot) -> QTimer:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.setInterval(delay_ms)
        timer.timeout.connect(slot)
        return timer

    def _connect(self) -> None:
        self.model.changed.connect(self._on_model_changed)
        self.model.changed.connect(self._say_model_changed)
        self.image.changed.connect(self._on_image_changed)
        self.image.changed.connect(self._show_series_button)
        self.image.native.activated.connect(self._on_image_picked)  # picked, though it is the one shown
        for control in (self.te, self.tr, self.ti, self.ti2, self.flip, self.sequence):
            control.changed.connect(self._on_slider_changed)
        self.sequence.changed.connect(self._on_model_changed)
        self.preset.changed.connect(self._on_preset_changed)
        self.input_preset.changed.connect(self._on_input_preset_changed)
        for control in (self.input_te, self.input_tr, self.input_sequence, self.input_ti, self.input_flip):
            control.changed.connect(self._sync_input_preset)
        self.add_input.clicked.connect(self.add_input_row)
        self.add_series.clicked.connect(self.add_series_rows)
        self.input_sequence.changed.connect(self._on_inputs_changed)
        for control in (self.input_ti, self.input_flip):
            control.changed.connect(self._on_settings_changed)
        self.add_maps.clicked.connect(self.add_map_layers)
        # (the model's change calls it itself, before refusing a preset it cannot read)
        for control in (self.input_te, self.input_tr, self.device, self.consistency,
                        self.flip_average, self.gain_per_input, self.register, self.ideal_echoes):
            control.changed.connect(self._on_settings_changed)
        self.ground_truth.changed.connect(self._outputs.compare_volume)
        self.run.clicked.connect(self._start_volume)
        self.cancel.clicked.connect(self.cancel_work)
        for control in (self.te, self.tr, self.ti, self.ti2, self.flip,
                        self.input_te, self.input_tr, self.input_ti, self.input_flip):
            name, unit = control.label.rstrip(")").split(" (")
            say_typed_beyond(control, name, unit, self._say_typed_beyond)
        self._viewer.dims.events.current_step.connect(self._outputs.update_metrics_label)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self.native.destroyed.connect(_teardown(self._viewer, self._outputs.update_metrics_label,
                                                self._on_layer_removed, self.close_work))
        self._close_watch = _CloseWatch(self.native, self.cancel_work, self._stop_on_close)  # closed: stop

    def _on_layer_removed(self, event) -> None:
        """Closing an input layer mid-run cancels the work for it; closing the first input
        makes the first further input the first (:meth:`_promote_first_row`)."""
        current = next(iter(self._predictions.running), None)
        if current is not None and (event.value is current.layer
                                    or any(event.value is spec.layer for spec in current.inputs)):
            self.cancel_work()
        self._maps.forget(event.value)
        self._drop_closed_rows(event.value)
        if event.value is self.image.value or event.value is self._input_layer:  # (else _on_image_changed did)
            if self._promote_first_row(event.value):
                return
            self.image.reset_choices()  # another image becomes the input (_on_image_changed), or none:
            if self.image.value is None:  # which the list does without a word
                self._input_layer = None
                self._instead_of_closed(event.value)

    def _drop_closed_rows(self, closed) -> None:
        """Further inputs whose layer was ``closed`` leave the rows (not moved onto another
        layer by napari's list), with a line that says so."""
        gone = [row for row in self.inputs if row.chosen is closed]
        for row in gone:
            self.inputs.remove(row)
        if gone:
            self._on_inputs_changed()
            self._report(f"{closed.name} was closed: its row among the inputs is removed")

    def _promote_first_row(self, closed) -> bool:
        """The first input's layer (``closed``) was closed: the first further input, with its
        acquisition as its row gave it, becomes the first input and leaves the rows (rather
        than the Input box falling on a layer that is also a row), which the status line
        says. False where there is none."""
        if not len(self.inputs) or self.inputs[0].layer.value not in self._viewer.layers:
            return False
        row = self.inputs[0]
        spec = row.spec()
        self.inputs.remove(row)
        self._input_layer = spec.layer  # chosen here, not a closed layer's replacement
        if self.image.value is spec.layer:
            self._on_image_changed()
        else:
            self.image.value = spec.layer
        self.input_sequence.value = spec.sequence
        for box, value in ((self.input_te, spec.te_ms), (self.input_tr, spec.tr_ms),
                           (self.input_ti, spec.ti_ms), (self.input_flip, spec.flip_deg)):
            if value:  # what the row knew; the layer's own (or the default) where it knew nothing
                box.value = value
        self._on_inputs_changed()
        self._say_input_now(closed.name, spec.layer)
        return True

    # ------------------------------------------------------------------ events
    def _on_model_changed(self, *_):
        from .widget_logic import SEQUENCE_READS

        said_before = self.status.value  # a line of how the model before reads the input is said again below
        of_input = bool(said_before) and said_before in (FIRST_HINT, self._said_of_input, self._stated) \
            and said_before != self._refusal
        # a preset refused shown was the model before's: judged again below
        again = bool(self._preset_refused) and self.status.value == self._preset_refused == self._refusal
        if again:
            self.status.value = self._refusal = ""
        physics = self.model.value == "physics"
        reads_input = self.model.value in ("p2p", "physics")
        self.input_preset.visible = self.input_te.visible = self.input_tr.visible = reads_input
        self.sequence.visible = self.add_maps.visible = self.consistency.visible = physics
        self.flip_average.visible = self.add_input.visible = physics
        reads = SEQUENCE_READS.get(self.sequence.value, ()) if physics else ()
        self.ti.visible, self.ti2.visible, self.flip.visible = ("ti" in reads), ("ti2" in reads), ("flip" in reads)
        self._update_range_warning()
        self._on_inputs_changed()  # a refusal that no longer holds goes ...
        if self._refuse_preset(self.preset):  # ... before the model refuses a contrast it cannot render:
            self._preview_timer.stop()  # nothing runs on its change (it would put a spin echo in the
            self._volume_timer.stop()  # refused contrast's place), until a setting asks for one
            self._refused_while_due = ""
        self._refuse_preset(self.input_preset, inputs=True)  # or an input it cannot read
        self._sync_input_preset()
        if of_input and self.status.value == said_before and self.image.value is not None:
            self.status.value = self._said_of_input = ""
            if line := self._reading_line(self.image.value):
                self._stated = line
                self._say_of_input(line)
        if not self.status.value and self.image.value is not None and self.model.value != "d2p":
            self._say_what_runs(check=True)  # what holds for this model is said (input times to type, say)

    def _reading_line(self, layer) -> str:
        """How the model chosen reads ``layer``: as its file states (or, for
        Default-to-Param, as its one input acquisition), else at the input times shown."""
        line = stated_input_line(layer, self.model.value)
        if line or self.model.value == "d2p" or not self.input_te.value or not self.input_tr.value:
            return line
        return self._taken_as_line(layer)

    def _taken_as_line(self, layer, unknown: str = "TE/TR") -> str:
        """The line for an input whose metadata lack ``unknown`` (``TE``, ``TR`` or both):
        the times it is taken at, and how to name its acquisition instead."""
        return (f"{layer.name}: no {unknown} in its metadata; taken as TE {self.input_te.value:g} / TR "
                f"{self.input_tr.value:g} ms (name its acquisition with Input preset)")

    def _say_model_changed(self, *_) -> None:
        """A finished job's news in the status line was of the model before: say how to
        predict with this one (unless a refusal or the joint maps' hint is said)."""
        said = self.status.value
        if self._volume_timer.isActive():
            return  # live preview: the volume follows, and says so
        if self.is_idle() and said and said not in (self._refusal, self._joint_hint) \
                and self._outputs.has_prediction():
            if not self._say_shown_is_current():
                self._report("The model changed: press Run all slices (or move a slider) to predict with it")

    def _say_shown_is_current(self) -> bool:
        """Where the prediction shown is the one the controls ask for (a model chosen back,
        a setting moved back, with live preview off), say so; whether it is."""
        request = self.current_request(whole=True)
        if request is None or not self._outputs.shows(request):
            return False
        self._report(f"The prediction shown is at these settings: {target_words(request)}")
        return True

    def _on_inputs_changed(self, *_):
        """The input's own sequence, TI and flip are read by the physics model (one input
        or several); the list of further inputs shows once there is one."""
        if self._adding_rows:  # the rows of a series: taken up once all are added
            return
        physics = self.model.value == "physics"
        joint = physics and len(self.inputs) > 0
        self.inputs.visible = self.gain_per_input.visible = self.register.visible = joint
        self.ideal_echoes.visible = joint
        self.input_sequence.visible = physics
        self.input_ti.visible = physics and self.input_sequence.value in ("inversion_recovery", "mprage")
        self.input_flip.visible = physics and self.input_sequence.value in ("gradient_echo", "mprage")
        self.joint_status.value = ""  # it told of the inputs before: the next fit's follows
        self._show_series_button()
        self._fit_width()
        tab_in_layout_order(self.native)  # a row added: Tab reaches it where it shows
        refusal = self._rows_refusal() if joint else ""
        if refusal:  # a further input no model reads: said as it is chosen, and again if asked to run
            self._refuse(refusal)
            return
        self._on_settings_changed()

    def _rows_refusal(self) -> str:
        """Why a further input's layer cannot be an input (the first such row's), else empty."""
        return next((why for row in self.inputs if (why := image_refusal(row.layer.value))), "")

    def _series_siblings(self) -> list:
        """The other images of the series of the input and of each further input, not yet
        inputs (:func:`series_siblings`): a second series (an echo train beside an
        inversion-recovery set) is added whole once one of its images is a row."""
        from .widget_logic import series_siblings

        chosen = [self.image.value, *(row.layer.value for row in self.inputs)]
        found = []
        for layer in chosen:
            found += series_siblings(layer, list(self._viewer.layers), [*chosen, *found])
        return found

    def _show_series_button(self, *_) -> None:
        """The series button shows, with how many images it adds, where there are any."""
        siblings = self._series_siblings() if self.model.value == "physics" else []
        self.add_series.visible = bool(siblings)
        if siblings:
            count = len(siblings)
            whose = "its series" if not len(self.inputs) else "their series"
            self.add_series.text = (f"+ The other image of {whose}" if count == 1
                                    else f"+ The other {count} images of {whose}")

    def add_series_rows(self, *_) -> list:
        """A row for each other image of the input's series (:meth:`_series_siblings`); the
        inputs are taken up once, when all are rows (:meth:`_on_inputs_changed`)."""
        rows = []
        self._adding_rows = True
        try:
            for layer in self._series_siblings():
                row = self.add_input_row()
                row.layer.value = layer
                row.fill_from_layer()
                rows.append(row)
        finally:
            self._adding_rows = False
        self._on_inputs_changed()
        return rows

    def reset_choices(self, *args) -> None:
        # a layer renamed resets the choices, and magicgui would let a layer still open go
        # (the ground truth to none): each stays chosen while it is open
        controls = (getattr(self, "image", None), getattr(self, "ground_truth", None),
                    *(row.layer for row in getattr(self, "inputs", ())))
        chosen = [(control, control.value) for control in controls if control is not None]
        super().reset_choices(*args)
        for control, layer in chosen:
            if layer is not None and control.value is not layer and layer in self._viewer.layers \
                    and layer in control.choices:
                control.value = layer
        if hasattr(self, "add_series"):  # layers added or removed: the series may have changed
            self._show_series_button()

    def add_input_row(self, *_) -> "InputRow":
        """A row for another image of the same subject, pre-filled from its layer's metadata:
        the first image layer not yet an input and not one of this widget's outputs (None,
        and a line saying so, where there is none)."""
        from napari.layers import Image

        used = {id(self.image.value), *(id(r.layer.value) for r in self.inputs)}
        free = [layer for layer in self._viewer.layers if isinstance(layer, Image)
                and id(layer) not in used and "mr_reparam_role" not in (layer.metadata or {})]
        if not free:  # none but the inputs and this widget's outputs, which are no scans
            self._report("No other image to add: open another scan of this subject first")
            return None
        row = InputRow(on_change=self._on_inputs_changed, on_remove=self._remove_input_row,
                       on_typed_beyond=self._say_typed_beyond, on_guess=self._say_of_input)
        self.inputs.append(row)
        row.reset_choices()
        row.layer.value = free[0]
        row.fill_from_layer()
        self._on_inputs_changed()
        return row

    def _remove_input_row(self, row) -> None:
        self.inputs.remove(row)
        self._on_inputs_changed()

    def _fit_width(self) -> None:
        """The scroll area as wide as the controls need (rows added or removed)."""
        self._scroll.updateGeometry()

    @contextlib.contextmanager
    def _applying(self):
        """Controls set inside are set by a preset: their handlers leave the presets be."""
        self._applying_preset = True
        try:
            yield
        finally:
            self._applying_preset = False

    def _set_preset(self, name: str, combo=None) -> None:
        """Show ``name`` in the target's preset combo (or ``combo``) without applying it."""
        with self._applying():
            (combo or self.preset).value = name

    def _refuse_preset(self, combo, inputs: bool = False) -> bool:
        """When the model cannot render the preset ``combo`` shows (with ``inputs``: read an
        input acquired with it), put ``combo`` back to Custom and say why; True if so."""
        refusal = preset_refusal(combo.value, self.model.value, inputs=inputs)
        if refusal:
            self._preset_refused = refusal  # the model's: judged again when another is chosen
            self._set_preset(CUSTOM, combo)
            self._refuse(refusal)
            due = self._volume_timer.isActive() or self._preview_timer.isActive()
            self._refused_while_due = refusal if due else ""  # the run due (the model's change) keeps it
        return bool(refusal)

    def _chosen_preset(self, combo, inputs: bool = False) -> dict | None:
        """The control values of the preset just chosen in ``combo``; None while a preset is
        being applied, for Custom, or when the model refuses it (:meth:`_refuse_preset`)."""
        if self._applying_preset or self._refuse_preset(combo, inputs):
            return None
        return preset_controls(combo.value)

    def _on_input_preset_changed(self, *_):
        """An input preset sets the input's sequence, TE, TR, TI and flip (still editable);
        a model that cannot read such an input refuses it with a message. Custom, chosen,
        takes back the acquisition the input's file states (DICOM tags, a sidecar)."""
        self._guessed_input = (None, None)  # chosen, not guessed (a guess sets its own after this)
        if self.input_preset.value == CUSTOM and not self._applying_preset:
            self._take_stated_input()
            return
        values = self._chosen_preset(self.input_preset, inputs=True)
        if values is None:
            return
        with self._applying():
            self.input_sequence.value = values["sequence"]  # spin echo unless physics (refused above)
            for key, box in (("te", self.input_te), ("tr", self.input_tr), ("ti", self.input_ti),
                             ("flip", self.input_flip)):
                if values[key] is not None:
                    box.value = min(max(float(values[key]), box.min), box.max)
        layer = self.image.value
        over = layer is not None and preset_over_stated(layer, self.input_preset.value, values)
        self._on_settings_changed()
        if over:  # said after the settings' own news: the times the file states are not silently lost
            self._say_of_input(over)

    def _take_stated_input(self) -> None:
        """The input's fields back to the acquisition its layer's file states, where it
        states its times (a preset chosen over them is undone)."""
        layer = self.image.value
        spec = input_from_metadata(layer) if layer is not None else None
        if spec is None or (spec.te_ms is None and spec.tr_ms is None):
            return
        with self._applying():
            if not self._fill_input_times(layer):
                return
        self._sync_input_preset()
        self._on_settings_changed()
        self._stated = f"{layer.name}: the acquisition its file states is back in the Input fields"
        self._say_of_input(self._stated)  # news only: a joint hint takes its place

    def _sync_input_preset(self, *_):
        """Name the input preset the input's controls hold, else Custom."""
        if not self._applying_preset:
            self._set_preset(matching_preset(self._input_values(), inputs=True), self.input_preset)

    def _input_values(self) -> dict:
        physics = self.model.value == "physics"
        return {"sequence": self.input_sequence.value if physics else "spin_echo", "te": self.input_te.value,
                "tr": self.input_tr.value, "ti": self.input_ti.value or None,
                "flip": self.input_flip.value or None}

    def _on_preset_changed(self, *_):
        """A preset sets the sequence and the sliders (still editable); a model that cannot
        render it refuses it with a message."""
        values = self._chosen_preset(self.preset)
        if values is None:
            return
        with self._applying():
            # (hidden for a paper model, which renders spin echo alone: kept in step for physics)
            self.sequence.value = values["sequence"]
            for key in ("te", "tr", "ti", "ti2", "flip"):
                if values[key] is not None:
                    slider = getattr(self, key)
                    slider.value = min(max(float(values[key]), slider.min), slider.max)
        self._on_slider_changed()

    def _control_values(self) -> dict:
        physics = self.model.value == "physics"
        return {"sequence": self.sequence.value if physics else "spin_echo", "te": self.te.value,
                "tr": self.tr.value, "ti": self.ti.value, "ti2": self.ti2.value, "flip": self.flip.value}

    def _say_of_input(self, text: str) -> None:
        """A status line about the input chosen, cleared when another is chosen."""
        self.status.value = self._said_of_input = text

    def _refuse(self, text: str) -> None:
        """Say in the status line why nothing runs: a job that finishes later keeps it (:meth:`_report`)."""
        self.status.value = self._refusal = text

    def _report(self, text: str) -> None:
        """A job's news in the status line, unless a refusal newer than the job is shown."""
        if not (self._refusal and self.status.value == self._refusal):
            self.status.value = text

    def _on_image_changed(self, *_):
        try:
            self._take_image()
            layer = self.image.value
            self.image.tooltip = INPUT_TIP if layer is None else f"{layer.name}\n{INPUT_TIP}"  # the list cuts it
            if layer is not None:
                bring_into_view(self._viewer, layer)  # an input chosen off screen is shown
            if layer is not None and not self.status.value:  # what it is read as, from its file
                self._stated = stated_input_line(layer, self.model.value)
                self._say_of_input(self._stated)
        finally:
            self._say_input_replaced()

    def _say_input_replaced(self) -> None:
        """After the input chosen was closed and another image taken up in its place, the
        status line says so before what it says of the new input."""
        closed, self._closed_for = self._closed_for, ""
        if closed and self.image.value is not None:
            self._say_input_now(closed, self.image.value)

    def _say_input_now(self, closed: str, layer) -> None:
        """``closed`` (a name) was closed and ``layer`` is the Input now: said before what the
        status line says of it."""
        said = self.status.value
        self._say_of_input(f"{closed} was closed: the Input is now {layer.name}" + (f". {said}" if said else ""))

    def _take_image(self) -> None:
        layer = self.image.value
        before, self._input_layer = self._input_layer, layer
        closed = before is not None and before is not layer and before not in self._viewer.layers
        if closed and (self._promote_first_row(before) or self._instead_of_closed(before)):
            return  # the input chosen was closed: the first row moved up, or an image chosen instead
        # an image chosen (here none of this widget's outputs) ends the closed input's line
        self._closed_input = self._closed_input if closed and layer is None else ""
        self._maps_asked = None  # map layers asked for the input before are not this one's
        self.joint_status.value = ""
        if self._said_of_input or self.is_idle():  # what was said of the input before no longer holds
            self.status.value, self._said_of_input = "", ""
        refusal = image_refusal(layer) or self._engines.thin_slices(layer, self.model.value, self.device.value)
        if refusal:  # colour, 4-D, no image in it, too thin: said now, and again if asked to run
            self._say_of_input(refusal)
            self._refusal = refusal
            self._outputs.update_comparison()  # the figures of the input before are not its
            return
        if layer is not None and not self._fill_input_times(layer):
            return
        self._sync_input_preset()
        self._outputs.update_comparison()  # this input's figures, or none
        # a refusal of the input before goes, and this one's shows
        self._say_what_runs(check=layer is not None)

    def _instead_of_closed(self, closed) -> bool:
        """The input chosen was closed and no row moved up. Where napari's list fell on an
        output of this widget, an image that is none is chosen instead; where there is no
        such image, or the list fell on none, the status line says so (after a run the
        closing cancelled) and nothing runs until an input is chosen."""
        layer = self.image.value
        if layer is not None and "mr_reparam_role" not in (layer.metadata or {}):
            self._closed_for = closed.name
            return False  # napari's list fell on another image: the input now
        other = next((c for c in self.image.choices
                      if c is not None and "mr_reparam_role" not in (c.metadata or {})), None)
        if other is not None:
            self._closed_for = closed.name
            self.image.value = other  # taken up by _on_image_changed
            return True
        self._closed_input = f"{closed.name} was closed: choose the image to predict from (Input)"
        self._refuse(self._closed_input)
        self._outputs.update_comparison()
        return True

    def _add_tooltips(self) -> None:
        """What each control without one of its own does, on hovering it."""
        tips = {
            self.image: INPUT_TIP,
            self.model: "Physics: reads PD, T1 and T2 maps from the input, then renders any contrast "
                        "through the signal equations (the default). Default-to-Param and "
                        "Param-to-Param: the paper's networks, spin-echo targets only",
            self.input_sequence: "How the input was acquired: the physics model reads its maps through "
                                 "this sequence's signal equation",
            self.sequence: "The contrast to render: spin echo (TE, TR), inversion recovery (FLAIR, "
                           "STIR: TI), gradient echo (flip angle), MPRAGE, double inversion recovery",
            self.te: "Echo time of the contrast to render, in ms",
            self.tr: "Repetition time of the contrast to render, in ms",
            self.ti: "Inversion time of the contrast to render, in ms",
            self.flip: "Flip angle of the contrast to render, in degrees",
            self.add_maps: "Add the input's proton density, T1 (ms) and T2 (ms) maps as layers (hidden "
                           "at first: tick their eyes)",
            self.ground_truth: "A real image of the subject at the target's TE/TR, if you have one: "
                               "the difference layer and the PSNR/SSIM compare the prediction with it",
            self.device: DEVICE_TIP,
            self.live: "Re-render as a slider moves: the slice on screen at once, the whole volume "
                       "once the sliders rest",
            self.run: "Predict every slice of the input at these settings",
            self.cancel: "Stop the running prediction; nothing it made is added",
        }
        for control, tip in tips.items():
            control.tooltip = tip

    def _on_image_picked(self, *_) -> None:
        """The layer napari's list fell on after the input was closed (an output of this
        widget, :meth:`_instead_of_closed`) picked in the Input list by hand: it is chosen,
        though the list's value did not change."""
        if self._closed_input and self.image.value is not None:
            self._closed_input = ""
            if self.status.value == self._refusal:
                self.status.value = self._refusal = ""
            self._take_image()

    def _fill_input_times(self, layer) -> bool:
        """The input's sequence, TE, TR, TI and flip from its layer's metadata. A time they
        lack is "?", to type, where the command line would not guess it
        (:func:`input_times_to_type`), else that of the preset the image looks like, or the
        default (said in the status). False where the metadata's times can only be seconds:
        the fields hold them as stated, so that nothing runs until they are typed in ms."""
        meta = layer.metadata or {}
        spec = input_from_metadata(layer)
        self.input_sequence.value = spec.sequence
        self.input_ti.value, self.input_flip.value = spec.ti_ms or 0, spec.flip_deg or 0
        te, tr = (float(meta[k]) if meta.get(k) else None for k in ("te_ms", "tr_ms"))
        try:
            refuse_seconds(input_te=te, input_tr=tr)
        except ValueError as exc:  # metadata written in seconds: the fields hold them, and refuse to run
            self.input_te.value, self.input_tr.value = te or 0, tr or 0
            self._say_of_input(f"{layer.name}: {exc}")
            return False
        to_type = input_times_to_type(layer)
        # a time the metadata lack is not that of the image chosen before
        readout = meta.get("readout_tr_ms") if tr is None and spec.sequence == "mprage" else None
        self.input_te.value = te if te is not None else 0 if "TE" in to_type else DEFAULT_TE_MS
        self.input_tr.value = tr if tr is not None else 0 if "TR" in to_type else (
            get_input_preset("MPRAGE").tr if readout else DEFAULT_TR_MS)
        unknown = "/".join(n for n, v in (("TE", te), ("TR", tr)) if v is None and n not in to_type)
        self._say_of_input_times(layer, unknown, readout)
        return True

    def _say_of_input_times(self, layer, unknown: str, readout) -> None:
        """Say where the input's times did not come from its metadata (``unknown``: the
        times taken as a default, ``TE``, ``TR`` or ``TE/TR``; ``readout``: an MPRAGE-type
        series' RepetitionTime tag, its readout's pulse spacing)."""
        meta = layer.metadata or {}
        if readout:  # GE/Philips MPRAGE-type series: the tags hold the readout's pulse spacing
            self._say_of_input(f"{layer.name}: its DICOM RepetitionTime ({readout:g} ms) is the readout's "
                               "pulse spacing; the time from one inversion to the next is not in the "
                               f"tags: taken as {self.input_tr.value:g} ms (type it in Input TR)")
        elif meta.get("sidecar_times_ignored"):  # its sidecar's times can only be ms: the fields' win
            self._say_of_input(f"{layer.name}: {meta['sidecar_times_ignored']}; {TIMES_TO_TYPE}")
        elif unknown == "TE/TR" and (guess := guessed_input_preset(layer, self.model.value)) is not None:
            self.input_preset.value = guess.reading  # fills the input's sequence and times
            self._guessed_input = (layer, guess.reading)
            self._say_of_input(guessed_line(layer.name, guess, "change Input preset"))
        elif unknown and self.model.value == "d2p":  # it reads no input's times (Input preset hidden)
            self._say_of_input(self._reading_line(layer))
        elif unknown:
            self._say_of_input(self._taken_as_line(layer, unknown))

    def _seconds_hint(self) -> str:
        """The hint for a time field holding what can only be seconds (shown in the status)."""
        physics = self.model.value == "physics"
        reads_input = self.model.value in ("p2p", "physics")
        from .widget_logic import SEQUENCE_READS

        sequence = self.sequence.value if physics else "spin_echo"
        input_ti = physics and "ti" in SEQUENCE_READS.get(self.input_sequence.value, ())
        hint = seconds_hint(sequence, te=self.te.value, tr=self.tr.value,
                            ti=self.ti.value if "ti" in SEQUENCE_READS.get(sequence, ()) else None,
                            input_te=self.input_te.value if reads_input else None,
                            input_tr=self.input_tr.value if reads_input else None,
                            input_ti=self.input_ti.value if input_ti else None)
        if hint:
            self._refuse(hint)
        return hint

    def _on_slider_changed(self, *_):
        if not self._applying_preset:
            self._set_preset(matching_preset(self._control_values()))
        self._update_range_warning()
        if self._seconds_hint():
            return
        if self.te.value >= self.tr.value:
            self._refuse("TE must be shorter than TR")
            return
        if self.live.value and self.image.value is not None:
            self._preview_timer.start()
            self._volume_timer.start()
            return
        self._say_what_runs()
        self._say_live_off()

    def _say_live_off(self) -> None:
        """The prediction shown is of the settings before, and live preview is off: say how
        to render these (unless a refusal or the joint maps' hint is said)."""
        said = self.status.value
        if said and said in (self._refusal, self._joint_hint):
            return
        if self.image.value is not None and self._outputs.has_prediction() and not self._say_shown_is_current():
            self._report(f"Live preview is off: press Run all slices for {target_words(self.current_request(True))}")

    def _say_typed_beyond(self, line: str, field) -> None:
        """A number typed beyond a field's range (``line``: what the field took) is said on
        the warning line, after any target warning, until a target changes again or that
        field is typed in within its range (``line`` empty)."""
        if not line and self._typed_field is not field:
            return  # another field's line, or none, is shown
        self._typed_field = field if line else None
        self._update_range_warning(line)

    def _update_range_warning(self, typed_beyond: str = "") -> None:
        """Warn of a target outside the range the model's predictions are bound to (the
        paper's networks'; the physics model renders any TE/TR), and of ``typed_beyond``."""
        from .widget_logic import target_range_warnings

        warnings = [*target_range_warnings(self.model.value, self.te.value, self.tr.value), typed_beyond]
        self.range_warning.value = "⚠ " + "; ".join(filter(None, warnings)) if any(warnings) else ""

    def _on_settings_changed(self, *_):
        self.joint_status.value = ""  # it told of the fit before: the next one's follows
        if self._seconds_hint():
            return
        if self.live.value and self.image.value is not None and self._outputs.has_prediction():
            self._volume_timer.start()
        else:
            self._say_what_runs()
            self._say_live_off()

    def _say_what_runs(self, check: bool = False) -> None:
        """Nothing runs on this change (live preview off, or nothing predicted yet): a
        refusal shown goes once the settings are valid, or gives way to the one they now
        call for, as any refusal shows with ``check`` or several inputs; several inputs
        whose joint maps are not fitted yet get a line that says how to fit them."""
        if self._joint_hint and self.status.value == self._joint_hint:
            self.status.value = ""  # said again below while it holds
        refused = bool(self._refusal) and self.status.value == self._refusal
        joint = self.model.value == "physics" and len(self.inputs) > 0
        if self.image.value is None or not (refused or joint or check):
            return
        request = self.current_request(whole=True)
        refusal = self._refusal_of(request)
        if refusal and self.status.value.endswith(TIMES_TO_TYPE):  # it says why they are to be typed
            self._refusal = self.status.value
            return
        if refusal:
            self._refuse(refusal)
            return
        if refused:
            self.status.value = self._refusal = ""
        said_of_input = (bool(self._said_of_input) and self.status.value == self._said_of_input  # it stays,
                         and self.status.value != self._stated)  # but for what a file states: news only
        if joint and not said_of_input and self._maps.get(request) is None:
            slider = " (or move a slider)" if self.live.value else ""
            self._joint_hint = f"{len(request.inputs)} inputs: press Run all slices{slider} to fit their joint maps"
            self.status.value = self._joint_hint

    # ------------------------------------------------------------------ requests
    def current_request(self, whole: bool) -> Request | None:
        layer = self.image.value
        if layer is None:
            self._refuse("Choose an input image layer")
            return None
        index = None if whole else self._slice_on_screen(layer)
        given_input = self.model.value in ("p2p", "physics")
        physics = self.model.value == "physics"
        sequence = self.sequence.value if physics else "spin_echo"
        from .widget_logic import SEQUENCE_READS

        reads = SEQUENCE_READS.get(sequence, ())
        input_reads = SEQUENCE_READS.get(self.input_sequence.value, ()) if physics else ()  # a hidden field's
        input_ti = (float(self.input_ti.value) or None) if "ti" in input_reads else None  # value (an earlier
        input_flip = (float(self.input_flip.value) or None) if "flip" in input_reads else None  # preset's): unread
        inputs = ()
        guessed_layer, guessed = self._guessed_input  # its times still those of a guess by its look
        guessed = guessed if guessed_layer is layer and self.input_preset.value == guessed else None
        if physics and len(self.inputs):
            own = InputSpec(layer, self.input_sequence.value, float(self.input_te.value),
                            float(self.input_tr.value), input_ti, input_flip, guessed=guessed)
            inputs = (own, *(row.spec() for row in self.inputs))
        return Request(layer=layer, model=self.model.value, device=self.device.value,
                       te=float(self.te.value), tr=float(self.tr.value),
                       input_te=float(self.input_te.value) if given_input else None,
                       input_tr=float(self.input_tr.value) if given_input else None,
                       slice_index=None if physics else index, sequence=sequence,
                       ti=float(self.ti.value) if "ti" in reads else None,
                       flip_deg=float(self.flip.value) if "flip" in reads else None,
                       ti2=float(self.ti2.value) if "ti2" in reads else None,
                       consistency=float(self.consistency.value) if physics else None,
                       flip_average=bool(self.flip_average.value) and physics, inputs=inputs,
                       gain_per_input=bool(self.gain_per_input.value) and bool(inputs),
                       register=bool(self.register.value) and bool(inputs),
                       echo_train="ideal" if self.ideal_echoes.value and inputs else "epg",
                       input_sequence=self.input_sequence.value if physics else "spin_echo",
                       input_ti=input_ti, input_flip=input_flip,
                       input_guessed=guessed if given_input else None,
                       preset=None if self.preset.value == CUSTOM else self.preset.value)

    def _slice_on_screen(self, layer) -> int | None:
        """The index of ``layer``'s slice the viewer shows (None for a 2-D layer, and where
        the view shows no one slice of its first axis: in 3-D, or with the dims' order
        changed to show another plane)."""
        shape = np.shape(layer.data)
        dims = self._viewer.dims
        if len(shape) != 3 or dims.ndisplay == 3 or dims.ndim - 3 in dims.displayed:
            return None
        point = layer.world_to_data(self._viewer.dims.point)
        return int(np.clip(round(point[0]), 0, shape[0] - 1))

    def _start_preview(self):
        request = self.current_request(whole=False)
        if request is not None and request.model != "physics" and np.ndim(request.layer.data) == 3 \
                and request.slice_index is None:
            return  # no one slice of the network's on screen (3-D, another plane): the volume follows at rest
        if request is not None and request.slice_index is None and self._maps.get(request) is not None:
            # physics with its maps at hand: while a slider moves, the slice on screen (a
            # render of the whole volume follows when the sliders rest)
            shown = self._outputs.find(request.layer, "prediction")
            index = self._slice_on_screen(request.layer)
            if index is not None and shown is not None and np.shape(shown.data) == np.shape(request.layer.data):
                request = replace(request, slice_index=index)
        self._submit(request)

    def _start_volume(self, *_):
        self._preview_timer.stop()
        self._volume_timer.stop()
        self._submit(self.current_request(whole=True))

    def _refusal_of(self, request: Request) -> str:
        """Why ``request`` cannot run, in one line (empty when it can): a layer no model
        reads, or a paper model that cannot read it; a time that can only be seconds (as the
        command line says it); an impossible target or input acquisition, a value unknown."""
        refusal = next((why for spec in request.inputs if (why := image_refusal(spec.layer))), "")
        refusal = (self._closed_input or image_refusal(request.layer) or refusal
                   or self._engines.thin_slices(request.layer, request.model, request.device)
                   or input_refusal(request.model, request.layer, self.input_sequence.value)
                   or seconds_hint(request.sequence, te=request.te, tr=request.tr, ti=request.ti,
                                   input_te=request.input_te, input_tr=request.input_tr,
                                   input_ti=request.input_ti))
        if refusal:
            return refusal
        if request.te >= request.tr:
            return "TE must be shorter than TR"
        if request.register and (why := registration_refusal(request.inputs)):
            return why
        try:
            request.target()
            request.given()  # the input's: a TI or flip its sequence needs, TE shorter than TR
            if request.inputs:
                joint_acquisitions(request.inputs, request.register)
        except ValueError as exc:
            return str(exc)
        return ""

    def _submit(self, request: Request | None) -> None:
        if request is None:
            return
        refusal = self._refusal_of(request)
        if refusal:  # one line in the widget; nothing runs, no layer is touched
            self._refuse(refusal)
            return
        if self._refusal != self._refused_while_due:  # a preset refused as this run was due stays said
            self._refusal = ""  # taken: what it and the jobs before it report is news again
        self._refused_while_due = ""
        maps = self._maps.get(request)
        if maps is not None:  # physics: the maps exist, rendering is instant
            self._show_render(request, maps)
            return
        running = self._predictions.running[0] if self._predictions.running else None
        job = self._predictions.job
        if job is not None and job.cancelled():  # stopping (Cancel): its maps will not come
            running = None
        if running is not None and self._maps.same(running, request):  # these maps are being fitted:
            self._predictions.drop()  # no second fit waits; this target renders from them (_on_result)
            self._render_when_fitted = request
            return
        self._render_when_fitted = None  # this request comes after it, with maps of its own
        # one engine call in a worker thread, after any running one (a newer request
        # replaces this one while it waits)
        if len(self._read_from) > 16:  # those of jobs replaced while they waited, or failed
            self._read_from.clear()
        self._read_from[id(request)] = [layer.data for layer in read_layers(request)]  # what the job reads
        self._predictions.submit(partial(compute, self._engines, request, request.layer.data), request)

    def _on_started(self, request: Request) -> None:
        shape = np.shape(request.layer.data)
        total = shape[0] if len(shape) == 3 and request.slice_index is None else 1
        if request.inputs:
            total = joint_job_units(request.inputs, request.register, request.gain_per_input)
        self.cancel.enabled = True
        self.progress.max, self.progress.value = total, 0
        what = "whole volume" if request.slice_index is None else f"slice {request.slice_index}"
        line = f"Predicting {what} at TE {request.te:g} / TR {request.tr:g} ms..."
        if request.inputs:
            first = "Registering the inputs onto the first, then fitting" if request.register else "Fitting"
            line = f"{first} joint maps to {len(request.inputs)} inputs..."
        if request.slice_index is None and (short := shortage(int(np.prod(shape)), joint=bool(request.inputs))):
            line = f"{line} {short[0].upper()}{short[1:]}"  # before the system stops it, the user knows why
        self._report(line)

    def _on_progress(self, done: int) -> None:
        job = self._predictions.job  # a cancelled job's last steps do not move the bar again
        if job is not None and job.cancelled():
            return
        self.progress.value = min(self.progress.value + done, self.progress.max)

    def _on_result(self, result, request: Request) -> None:
        job = self._predictions.job  # the one delivering: cancelled (Cancel, the dock closed), it shows nothing
        if job is not None and job.cancelled():
            return
        if request.layer not in self._viewer.layers:
            self._report("The input was closed; its prediction is dropped")
            return
        read = self._read_from.pop(id(request), None)
        changed = [] if read is None else [layer for layer, data in zip(read_layers(request), read)
                                           if layer.data is not data]
        if changed:
            self._report(f"{changed[0].name}'s data changed while it ran; its prediction is dropped: run again")
            return
        kind, value = result
        self.device.tooltip = f"{DEVICE_TIP}; in use: {self._engines.last_device}"
        if kind == "maps":
            engine, maps = value
            self._maps.put(request, engine, maps)
            newer, self._render_when_fitted = self._render_when_fitted, None
            if newer is not None and self._maps.get(newer) is None:
                newer = None  # its inputs or options have changed since: a request of its own follows
            self._show_render(newer or request, (engine, maps))
            if self._maps_asked is not None and self._maps.get(self._maps_asked) is not None:
                self.add_map_layers()  # asked for before the maps were fitted
            return
        shown = self._outputs.find(request.layer, "prediction")
        if request.model != self.model.value and shown is not None \
                and (shown.metadata or {}).get("model") == self.model.value:
            return  # the model was changed back while it ran, and the chosen one's prediction shows: it stays
        engine = self._engines.loaded(request.model, request.device)  # the one that predicted it
        self._outputs.write_prediction(request, *value, weights_sha256=engine.info.sha256 if engine else None)
        self._outputs.update_comparison(request.slice_index)
        where = "volume" if request.slice_index is None else f"slice {request.slice_index}"
        self._report_done(f"Done ({where}) on {self._engines.last_device}: {target_words(request)}", request)

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        from .cancellation import Cancelled

        if isinstance(exc, Cancelled):  # cancel_work said so as it cancelled; a line since then stays
            return
        self._render_when_fitted = None  # the maps it waited for did not come
        self._report(f"Error: {exc}")
        show_error(f"MR re-parameterization failed: {exc}")

    def _on_finished(self) -> None:
        self.cancel.enabled = False

    def _show_render(self, request: Request, engine_and_maps) -> None:
        """Physics model: render from the cached maps the slice ``request.slice_index``
        (a preview while a slider moves: here, at once) or the whole volume (in a worker
        thread; shown when it returns unless a newer render was asked meanwhile)."""
        engine, maps = engine_and_maps
        if request.slice_index is None:
            self._outputs.drop_comparison()
            self._renders.submit(lambda job: with_range(render_request(engine, maps, request)), request,
                                 engine_and_maps)
            self._report(f"Rendering the whole volume: {target_words(request)}...")
            return
        self._renders.drop()  # a whole volume still rendering would cover the slice shown now
        try:
            volume = render_request(engine, maps, request)
        except ValueError as exc:
            self._refuse(str(exc))
            return
        self._show_rendered((volume, None), request, engine_and_maps)

    def _on_render_error(self, exc: Exception) -> None:
        if isinstance(exc, ValueError):  # a target the maps cannot render: one line
            self._report(str(exc))
            return
        self._on_error(exc)

    def _show_rendered(self, rendered: tuple, request: Request, engine_and_maps) -> None:
        """``rendered``: the volume (or slice) and, for a volume, its value range."""
        if request.layer not in self._viewer.layers:
            self._report("The input was closed; its render is dropped")
            return
        engine, maps = engine_and_maps
        volume, limits = rendered
        shape = np.shape(request.layer.data)
        self._outputs.write_prediction(
            request, volume.reshape(shape if request.slice_index is None else shape[1:]), limits,
            weights_sha256=engine.info.sha256 if engine is not None else maps.weights_sha256)
        self._outputs.update_comparison(request.slice_index)
        where = "" if request.slice_index is None else f", slice {request.slice_index}"
        if engine is None:
            self.joint_status.value = determined_line(maps.summary(), request.register) + one_gain_hint(request)
            source = f"the joint maps of {len(request.inputs)} inputs"
        else:
            source = f"the maps on {self._engines.last_device}"
        if self._predictions.busy and not self._predictions.job.cancelled():  # other settings' maps being fitted
            self._report(f"Rendered from {source}: {target_words(request)}{where}; the maps of other settings "
                         "are still being fitted...")
            return
        self._report_done(f"Rendered from {source}: {target_words(request)}{where}", request)

    def _report_done(self, line: str, request: Request) -> None:
        """A finished job's line; where the model was changed while it ran, which model it
        was and how to predict with the one chosen now."""
        if request.model != self.model.value:
            line += (f" with {request.model}; the model is now {self.model.value}: press Run all slices "
                     "(or move a slider) to predict with it")
        elif unmeasured := unmeasured_words(request.layer):  # as the command line's notice
            line += f". {unmeasured}"
        self._report(line)

    def add_map_layers(self, *_) -> None:
        """Add the physics model's PD, T1 and T2 (ms) maps of the input as layers."""
        request = self.current_request(whole=True)
        if request is None or request.model != "physics":
            self.status.value = "Choose the physics model to get quantitative maps"
            return
        cached = self._maps.get(request)
        if cached is None:  # fitted first: the layers follow when the maps come
            self._maps_asked = request
            self._submit(request)
            return
        self._maps_asked = None
        engine, maps = cached
        layer = request.layer
        shape = np.shape(layer.data)
        names = {"pd": "PD map (relative)", "t1": "T1 map (ms)", "t2": "T2 map (ms)"}
        sized = maps.at_input_size() if engine is not None else {k: getattr(maps, k) for k in names}
        # the input's place (and, from DICOM, its study): a map saved from napari keeps them
        placed = {k: v for k, v in (layer.metadata or {}).items() if k in ("volume", "affine", "header")}
        for key, data in sized.items():
            name = f"{layer.name} {names[key]}"
            data = data.reshape(shape)
            limits = map_contrast_limits(data)  # robust: a capped T1 map's tissues told apart
            unit = "ms" if key != "pd" else PD_UNITS["network" if engine is not None else "joint"]
            metadata = {**placed, "mr_reparam_role": f"map_{key}", "unit": unit, "quantity": key.upper(),
                        "model": JOINT_MODEL if request.inputs else request.model,
                        "weights_sha256": engine.info.sha256 if engine is not None else maps.weights_sha256}
            if name in self._viewer.layers:  # refitted (from other inputs, say): what it holds now
                shown = self._viewer.layers[name]
                shown.data, shown.contrast_limits = data, limits
                shown.metadata.update(metadata)
            else:
                self._viewer.add_image(data, name=name, **placement(layer),
                                       colormap="viridis" if key != "pd" else "gray", visible=False,
                                       contrast_limits=limits, metadata=metadata)
        self._report(f"Added the PD, T1 and T2 maps of {layer.name} as layers (hidden: tick their eyes)")

    def is_idle(self) -> bool:
        """Whether no prediction, render or comparison is running or waiting."""
        return self._predictions.idle and self._renders.idle and self._outputs.idle

    def close_work(self, *_) -> None:
        """Stop all work for good (the window closed): the running jobs are asked to stop,
        and nothing they return reaches the deleted controls."""
        self._preview_timer.stop()
        self._volume_timer.stop()
        for jobs in (self._predictions, self._renders):
            jobs.close()
        self._outputs.close()

    def _stop_on_close(self) -> None:
        """The window holding the dock closed (napari quitting): the work is cancelled, and
        its threads are waited for, so that none signals after the window's Qt objects are gone."""
        self.cancel_work()
        for jobs in (self._predictions, self._renders):
            jobs.wait()

    def cancel_work(self, *_) -> None:
        """Stop the running prediction and drop any waiting one (and any render or
        comparison in flight: its result is not shown)."""
        self._preview_timer.stop()
        self._volume_timer.stop()
        self._renders.drop()
        self._outputs.drop_comparison()
        self._maps_asked = None
        self._render_when_fitted = None
        if self._predictions.cancel():  # (a refusal shown, the input closed say, stays: _report)
            self._report("Cancelled")
            self.progress.value = 0  # not left part-way, as if it would go on
        if self._outputs.undo_previews():  # slices previewed at a setting whose volume never came
            self._report("Cancelled: the slices previewed at the new settings are taken back")


def _teardown(viewer, *callbacks):
    """A slot for the widget's ``destroyed`` signal: stop work for good, leave the viewer's events."""
    on_step, on_removed, cancel = callbacks

    def disconnect(*_):
        for emitter, callback in ((viewer.dims.events.current_step, on_step),
                                  (viewer.layers.events.removed, on_removed)):
            try:
                emitter.disconnect(callback)
            except (TypeError, ValueError, RuntimeError):
                pass
        try:
            cancel()
        except RuntimeError:
            pass  # Qt objects already gone

    return disconnect


class _CloseWatch(QObject):
    """Calls ``on_close`` when ``widget`` is closed: taken out of its dock (napari's ✕
    removes the dock) or its dock closed (hidden: it comes back from the Window menu);
    ``on_window_close`` when the window that holds the dock closes (napari quitting)."""

    def __init__(self, widget, on_close, on_window_close):
        super().__init__(widget)
        self._widget, self._on_close, self._on_window_close, self._watched = widget, on_close, on_window_close, ()
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        held = [ref() for ref in self._watched]  # weakly: the window holds this, not the reverse
        if watched is self._widget and kind == QEvent.Type.ParentChange:
            self._watch_dock()
            if self._widget.parent() is None:
                self._on_close()
        elif kind == QEvent.Type.Close and any(watched is w for w in held):
            self._on_close() if watched is held[0] else self._on_window_close()
        elif kind == QEvent.Type.ParentChange and held and watched is held[0]:
            self._watch_dock()  # the dock placed in its window (or taken out of it)
        return False

    def _watch_dock(self) -> None:
        """Watch the dock the widget is now in and the window that holds it (none: it left
        its dock)."""
        import weakref

        from qtpy.QtWidgets import QDockWidget

        dock = self._widget.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        watched = () if dock is None else (dock, *([dock.parentWidget()] if dock.parentWidget() else []))
        if list(watched) != [ref() for ref in self._watched]:
            for old in (ref() for ref in self._watched):
                if old is not None:
                    with contextlib.suppress(RuntimeError):  # already deleted
                        old.removeEventFilter(self)
            for new in watched:
                new.installEventFilter(self)
            self._watched = tuple(weakref.ref(w) for w in watched)
