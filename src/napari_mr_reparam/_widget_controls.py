"""The widget's own controls: a row for another input image and its acquisition, compact
time fields, sliders that step onto their grid, a note line that hides while empty, and
the scroll area the controls sit in (:mod:`napari_mr_reparam._widget` lays them out)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from magicgui.backends._qtpy.widgets import FloatSpinBox as _QtFloatSpinBox
from magicgui.widgets import (
    ComboBox, Container, FloatSlider, Label, PushButton, create_widget,
)
from magicgui.widgets.bases import RangedWidget
from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QDoubleSpinBox, QFrame, QScrollArea

from .presets import get_input_preset
from .widget_logic import (
    InputSpec, guessed_input_preset, guessed_line, input_from_metadata,
)

INPUT_SEQUENCE_CHOICES = [("Spin echo", "spin_echo"), ("Inversion recovery", "inversion_recovery"),
                          ("Gradient echo", "gradient_echo"), ("MPRAGE", "mprage")]
SEQUENCE_CHOICES = [*INPUT_SEQUENCE_CHOICES, ("Double inversion recovery", "double_inversion_recovery")]


class InputRow(Container):
    """Another image of the same subject and its acquisition, on compact lines: the layer,
    its sequence and a remove button; TE and TR; TI and flip where the sequence has them
    ("?" when unknown), pre-filled from the layer's metadata and editable."""

    def __init__(self, on_change, on_remove, on_typed_beyond=None, on_guess=None):
        import napari

        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self.layer = create_widget(annotation=napari.layers.Image, label="Image",
                                   options={"tooltip": "a co-registered image of the same subject"})
        self.chosen = None  # the layer as last chosen (one closed is told apart)
        self._guessed = None  # (input preset, its values) the layer's acquisition was guessed as
        self._on_guess = on_guess  # takes the line saying a layer's acquisition was guessed
        self.sequence = ComboBox(choices=INPUT_SEQUENCE_CHOICES, value="spin_echo")
        self.remove = PushButton(text="✕", tooltip="remove this input")
        self.remove.native.setMaximumWidth(28)
        self.te = _ms_box("TE ", 5000)
        self.tr = _ms_box("TR ", 20000)
        self.ti = _ms_box("TI ", 20000)
        self.flip = NumberBox(value=0, min=0, max=180, step=1)
        self.flip.native.setPrefix("flip ")
        self.flip.native.setSuffix("°")
        self.flip.native.setSpecialValueText("flip ?")
        from qtpy.QtWidgets import QAbstractSpinBox

        for box in (self.te, self.tr, self.ti, self.flip):  # typed or scrolled: narrow enough for two a line
            box.native.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        compact(self.layer, 11)  # most of "head TE20 TR6000"
        elide_start(self.layer)  # "…(echo 3) / TR 2000 ms": the end that tells a series' images apart
        compact(self.sequence, 4)  # "Spin e…": the list names it in full
        elide_end(self.sequence)
        top = Container(layout="horizontal", labels=False, widgets=[self.layer, self.sequence, self.remove])
        times = Container(layout="horizontal", labels=False, widgets=[self.te, self.tr])
        self._more = Container(layout="horizontal", labels=False, widgets=[self.ti, self.flip])
        for part in (top, times, self._more):
            part.margins = (0, 0, 0, 0)
        self.extend([top, times, self._more])
        self.layer.changed.connect(self.fill_from_layer)
        self.sequence.changed.connect(self._show_fields)
        for control in (self.layer, self.sequence, self.te, self.tr, self.ti, self.flip):
            control.changed.connect(lambda *_: on_change())
        self.remove.clicked.connect(lambda *_: on_remove(self))
        if on_typed_beyond is not None:
            for box, name, unit in ((self.te, "TE", "ms"), (self.tr, "TR", "ms"), (self.ti, "TI", "ms"),
                                    (self.flip, "flip", "°")):
                say_typed_beyond(box, lambda name=name: self._named(name), unit, on_typed_beyond)
        self._show_fields()

    def fill_from_layer(self, *_) -> None:
        layer = self.layer.value
        if self.chosen is not None and self.chosen not in self.layer.choices:
            return  # its layer was closed, and napari's list fell on another: the row goes
        self.chosen = layer
        self._guessed = None
        if layer is None:
            return
        spec = input_from_metadata(layer)
        self.layer.tooltip = layer.name  # in full where the box cuts it
        if (guess := guessed_input_preset(layer, "physics")) is not None:  # its metadata name nothing
            preset = get_input_preset(guess.reading)
            spec = InputSpec(layer, preset.sequence, preset.te, preset.tr, preset.ti, preset.flip_deg)
            self._guessed = (guess.reading, self._values(spec))
            self.layer.tooltip = guessed_line(layer.name, guess, "edit its row")
            if self._on_guess is not None:  # said where it is seen, not only on hovering
                self._on_guess(self.layer.tooltip)
        self.sequence.value = spec.sequence
        for box, value in ((self.te, spec.te_ms), (self.tr, spec.tr_ms), (self.ti, spec.ti_ms),
                           (self.flip, spec.flip_deg)):
            box.value = value or 0

    def _named(self, field: str) -> str:
        """A field of this row named with its image's layer: ``head TE20 TR600: TR``."""
        layer = self.layer.value
        return f"{layer.name}: {field}" if layer is not None else field

    def _show_fields(self, *_) -> None:
        from .widget_logic import SEQUENCE_READS

        reads = SEQUENCE_READS.get(self.sequence.value, ())
        self.ti.visible, self.flip.visible = "ti" in reads, "flip" in reads
        self._more.visible = "ti" in reads or "flip" in reads

    def spec(self) -> InputSpec:
        def known(box):
            return float(box.value) or None

        spec = InputSpec(self.layer.value, self.sequence.value, known(self.te), known(self.tr),
                         known(self.ti), known(self.flip))
        if self._guessed is not None and self._guessed[1] == self._values(spec):  # not edited since
            spec = replace(spec, guessed=self._guessed[0])
        return spec

    @staticmethod
    def _values(spec: InputSpec) -> tuple:
        return spec.sequence, *(float(v or 0) for v in (spec.te_ms, spec.tr_ms, spec.ti_ms, spec.flip_deg))


#: The decimals a time field keeps: a time typed in seconds (TE 0.03856) keeps its digits,
#: so its hint names the ms it means (38.56).
TIME_DECIMALS = 6


#: What a number field lets be typed: digits, a point and an exponent (``1e3``), each
#: part possibly still unfinished.
_TYPED_NUMBER = re.compile(r"[+-]?\d*\.?\d*([eE][+-]?\d*)?")


class _TrimmedSpinBox(QDoubleSpinBox):
    """A number field that shows its value without trailing zeros (``15``, ``38.56``).

    Qt's own field refuses a keystroke that takes the number past its range, so a typed
    7000 stays 700 (and ``1e3`` becomes 13) without a word. This one lets any number be
    typed, exponents included, takes one beyond its range as the nearest end when the typing
    ends, and keeps ``beyond`` (typed, taken) for its owner to say so
    (:func:`say_typed_beyond`)."""

    beyond: tuple[float, float] | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setKeyboardTracking(False)  # a number takes effect once typed, not at each keystroke ("7" of 7000)

    def textFromValue(self, value: float) -> str:
        text = super().textFromValue(value)
        point = self.locale().decimalPoint()
        return text.rstrip("0").rstrip(point) if point in text else text

    def _typed(self, text: str) -> str:
        """The typed number's text: without prefix and suffix, with a point for a decimal point
        (the locale's, and a comma: ``12,5`` is 12.5 ms, as a person in a comma locale types it,
        not 125)."""
        if self.prefix() and text.startswith(self.prefix()):
            text = text[len(self.prefix()):]
        if self.suffix() and text.endswith(self.suffix()):
            text = text[:-len(self.suffix())]
        return text.strip().replace(self.locale().decimalPoint(), ".").replace(",", ".")

    def _number(self, text: str) -> float | None:
        try:
            value = float(self._typed(text))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def validate(self, text: str, pos: int):
        from qtpy.QtGui import QValidator

        if self.specialValueText() and text == self.specialValueText():
            return QValidator.State.Acceptable, text, pos
        if not _TYPED_NUMBER.fullmatch(self._typed(text)):
            return QValidator.State.Invalid, text, pos
        value = self._number(text)
        within = value is not None and self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if within else QValidator.State.Intermediate), text, pos

    def valueFromText(self, text: str) -> float:
        value = self._number(text)
        return self.value() if value is None else value

    def fixup(self, text: str) -> str:
        """A number above the range is taken as its end; one below it (0, negative, 1e-3: no
        time or angle) and text that is no number (``1e``) keep the value before."""
        value = self._number(text)
        kept = self.value() if value is None or value < self.minimum() else min(value, self.maximum())
        if value is not None:
            self.beyond = (value, kept)
        return self.prefix() + self.textFromValue(kept) + self.suffix()


def say_typed_beyond(control, name, unit: str, say) -> None:
    """Once typing in ``control`` (a :class:`NumberBox`, a :func:`target_slider`) ends on a
    number beyond its range, ``say(line, box)`` the line
    (:func:`~napari_mr_reparam.widget_logic.typed_beyond_line`) that tells what the field
    took; once it ends within the range, ``say("", box)``: a line of this field's no longer
    holds. ``name``: the field's name, or a callable that gives it (a row's, by its layer)."""
    from .widget_logic import typed_beyond_line

    box = control.native if isinstance(control.native, _TrimmedSpinBox) else control.native.findChild(_TrimmedSpinBox)

    def finished():
        if box.beyond is None:
            say("", box)
            return
        (typed, kept), box.beyond = box.beyond, None
        said = name() if callable(name) else name
        say(typed_beyond_line(said, unit, typed, kept, box.minimum(), box.maximum()), box)

    box.editingFinished.connect(finished)


class _QtNumberBox(_QtFloatSpinBox):
    """magicgui's Qt float field, on :class:`_TrimmedSpinBox` with :data:`TIME_DECIMALS`."""

    def __init__(self, **kwargs):
        super(_QtFloatSpinBox, self).__init__(_TrimmedSpinBox, **kwargs)
        self._qwidget.setDecimals(TIME_DECIMALS)


class NumberBox(RangedWidget):
    """A float field for a time (ms) or an angle that keeps what was typed to
    :data:`TIME_DECIMALS` decimals, shows it without trailing zeros and takes a number
    typed beyond its range as the nearest end (:class:`_TrimmedSpinBox`)."""

    def __init__(self, **kwargs):
        super().__init__(widget_type=_QtNumberBox, **kwargs)


def _ms_box(prefix: str, maximum: float) -> NumberBox:
    """A compact time field: ``TE 15 ms``, or ``TE ?`` while unknown (0)."""
    box = NumberBox(value=0, min=0, max=maximum, step=1)
    box.native.setPrefix(prefix)
    box.native.setSuffix(" ms")
    box.native.setSpecialValueText(f"{prefix}?")
    return box


def target_slider(step: float, **kwargs) -> FloatSlider:
    """A target time or angle slider that a drag, an arrow key or the wheel moves by
    ``step``, onto a multiple of it.

    magicgui's float slider keeps the integer step and minimum it was given before its
    maximum lowered the slider's resolution (TR's 10 ms step became 100 ms, TI2's 10 ms
    minimum 1 ms), its page step is a few integer units, and a drag lands between steps
    (TE 499.50667 ms). Here the range and step are set again once the resolution is, a
    page is ten steps, and each user action is moved onto the grid
    (:func:`~napari_mr_reparam.widget_logic.on_step`) before it sets the value; a value
    set in code or typed in the readout is kept as given.
    """
    from qtpy.QtWidgets import QSlider

    from .widget_logic import on_step

    slider = FloatSlider(step=step, **kwargs)
    value = slider.value
    slider.min, slider.max, slider.step = kwargs["min"], kwargs["max"], step
    slider.value = value
    bar = slider.native.findChild(QSlider)
    bar.setPageStep(10 * bar.singleStep())
    units = bar.maximum() / slider.max  # integer slider units per value unit

    def snap(_action):
        value = on_step(bar.sliderPosition() / units, step, slider.min, slider.max)
        bar.setSliderPosition(round(value * units))

    bar.actionTriggered.connect(snap)
    _trimmed_readout(slider)
    return slider


#: The decimals a target slider's value field keeps.
READOUT_DECIMALS = 2


def _trimmed_readout(slider: FloatSlider) -> None:
    """The slider's value field without needless decimals (``120``, ``2.3``; not ``120.00``,
    ``2.29999``, as magicgui's slider holds 2.3): its own field is hidden (``readout`` off)
    and a :class:`_TrimmedSpinBox` that follows the slider, and sets it when typed in, takes
    its place."""
    from qtpy.QtWidgets import QAbstractSpinBox

    box = _TrimmedSpinBox()
    box.setDecimals(READOUT_DECIMALS)
    box.setRange(slider.min, slider.max)
    box.setSingleStep(slider.step)
    box.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
    box.setStyleSheet("background:transparent; border: 0;")
    box.setAlignment(Qt.AlignmentFlag.AlignRight)
    box.setValue(slider.value)
    slider.readout = False
    slider.native.layout().addWidget(box)
    slider.changed.connect(lambda value: box.setValue(value))
    box.editingFinished.connect(lambda: setattr(slider, "value", box.value()))


def compact(combo, chars: int = 8) -> None:
    """A combo box as wide as a short name, not its longest choice (a layer name can be
    long); the list it opens shows the names in full."""
    from qtpy.QtWidgets import QComboBox

    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(chars)


def elide_start(combo) -> None:
    """A combo box whose current text, where the box is too narrow for it, is cut at its
    start (``…(echo 3) / TR 2000 ms``, ``…TR 1000 ms, TI 300 ms``), not at its end: the names
    of one series' images share their start (the folder's name) and differ after it (an
    echo's TE and number sit mid-name, a TI at the end). The list it opens shows the names
    in full."""
    combo.native.installEventFilter(_Elided(combo.native, Qt.TextElideMode.ElideLeft))


def elide_end(combo) -> None:
    """A combo box whose current text, where the box is too narrow for it, ends in an
    ellipsis (``Spin e…``) rather than being cut mid-letter."""
    combo.native.installEventFilter(_Elided(combo.native, Qt.TextElideMode.ElideRight))


def shown_text(combo, mode=Qt.TextElideMode.ElideLeft) -> str:
    """The current text of an :func:`elide_start` (``mode`` ElideLeft) or :func:`elide_end`
    (ElideRight) combo box as it shows it."""
    from qtpy.QtWidgets import QStyle, QStyleOptionComboBox

    native = combo.native if hasattr(combo, "native") else combo
    option = QStyleOptionComboBox()
    native.initStyleOption(option)
    field = native.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                          QStyle.SubControl.SC_ComboBoxEditField, native)
    return native.fontMetrics().elidedText(option.currentText, mode, field.width())


class _Elided(QObject):
    """Paints its combo box as Qt does, with :func:`shown_text` for its current text."""

    def __init__(self, parent, mode):
        super().__init__(parent)
        self._mode = mode

    def eventFilter(self, watched, event) -> bool:
        if event.type() != QEvent.Type.Paint:
            return False
        from qtpy.QtWidgets import QStyle, QStyleOptionComboBox, QStylePainter

        option = QStyleOptionComboBox()
        watched.initStyleOption(option)
        painter = QStylePainter(watched)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = shown_text(watched, self._mode)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        painter.end()
        return True


def label_on_top(widget) -> None:
    """The label beside ``widget`` in a labelled container at the top of its row, not
    centred beside a tall widget (a list of rows)."""
    row = widget.native.parentWidget().layout()
    label = row.itemAt(0).widget()
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    row.setAlignment(label, Qt.AlignmentFlag.AlignTop)


class NoteLabel(Label):
    """A line that shows only while it says something (no blank row when empty)."""

    @property
    def value(self) -> str:
        return Label.value.fget(self)

    @value.setter
    def value(self, text: str) -> None:
        Label.value.fset(self, text)
        self.visible = bool(text)


def in_scroll_area(container: Container) -> QScrollArea:
    """Put ``container`` (already in its parent's layout) in a scroll area, in its place:
    a dock taller than the window then scrolls instead of squeezing the controls. A
    stretch below the controls keeps them at their natural height in a taller dock."""
    inner = container.native
    layout = inner.parentWidget().layout()
    index = layout.indexOf(inner)
    layout.removeWidget(inner)
    scroll = _ControlsScrollArea(inner)
    layout.insertWidget(index, scroll)
    inner.layout().addStretch()
    return scroll


class _ControlsScrollArea(QScrollArea):
    """Scrolls up and down only, so it is at least as wide as the controls need; as tall
    as they are where there is room (what follows it in the dock sits right below them),
    shorter, and scrolled, where there is not."""

    def __init__(self, inner):
        from qtpy.QtWidgets import QSizePolicy

        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(inner)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(self.minimumSizeHint().width(), self.widget().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        width = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return QSize(width, super().minimumSizeHint().height())


def wrap_text(label: Label) -> None:
    """Long text wraps instead of widening the dock."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


def tab_in_layout_order(root) -> None:
    """Tab (and Shift+Tab) moves through ``root``'s controls in the order its layouts show
    them, a scrolled area's included: Qt's own order is the order of their making, so the
    controls of a row added later (another input) came after everything else, Run included."""
    from qtpy.QtWidgets import QWidget

    order = [w for w in _in_layout_order(root) if w is not root]
    for first, then in zip(order, order[1:]):
        QWidget.setTabOrder(first, then)


def _in_layout_order(widget) -> list:
    """``widget`` where Tab stops on it, then what its layout holds (or its scrolled area's
    widget), in the layout's order."""
    found = [widget] if widget.focusPolicy() & Qt.FocusPolicy.TabFocus else []
    if isinstance(widget, QScrollArea):
        return (_in_layout_order(widget.widget()) if widget.widget() is not None else [])
    return found + (_layout_order(widget.layout()) if widget.layout() is not None else [])


def _layout_order(layout) -> list:
    found = []
    for i in range(layout.count()):
        item = layout.itemAt(i)
        if item.widget() is not None:
            found += _in_layout_order(item.widget())
        elif item.layout() is not None:
            found += _layout_order(item.layout())
    return found
