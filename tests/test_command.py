"""The command-line runner's one-line messages."""

from napari_mr_reparam.command import input_error


def test_an_input_error_names_the_input_once():
    reason = ValueError("scan.nii.gz: not a readable NIfTI file (truncated)")
    assert input_error("data/scan.nii.gz", reason) == "error: data/scan.nii.gz: not a readable NIfTI file (truncated)"
    assert input_error("data/other.nii.gz", reason) == ("error: data/other.nii.gz: scan.nii.gz: not a readable "
                                                        "NIfTI file (truncated)")
    assert input_error("series_acq2 (TE 20 / TR 2000 ms)", ValueError("series_acq2: no TE"), "series_acq2") == \
        "error: series_acq2 (TE 20 / TR 2000 ms): no TE"
    assert input_error("data/gone.nii", FileNotFoundError("data/gone.nii: no such file or folder")) == \
        "error: data/gone.nii: no such file or folder"


def test_both_commands_list_their_sub_commands_alike_and_run_the_chosen_one(capsys):
    from napari_mr_reparam import cli
    from napari_mr_reparam.command import command_parser, run_cli
    from napari_mr_reparam.training import cli as training_cli

    parser, sub = command_parser("tool", "Does one thing.")
    sub.add_parser("hello").set_defaults(func=lambda args: print("hi") or 3)
    assert run_cli(parser, ["hello"]) == 3 and capsys.readouterr().out == "hi\n"
    assert run_cli(parser, []) == 2  # no command: the help
    assert "usage: tool [-h] COMMAND ..." in capsys.readouterr().out
    for build in (cli.build_parser, training_cli.build_parser):
        text = build().format_help()
        assert "[-h] COMMAND ..." in text and "\ncommands:\n" in text


def test_a_command_line_error_is_one_line_with_status_2(capsys):
    import pytest

    from napari_mr_reparam import cli

    for argv, message in ((["predict", "scan.nii.gz", "--te", "100"],
                           "error: the following arguments are required: -o/--output "
                           "(see napari-mr-reparam predict --help)"),
                          (["predict", "scan.nii.gz", "-o", "x.nii.gz", "--te", "abc"],
                           "error: argument --te: not a number of milliseconds: 'abc' "
                           "(see napari-mr-reparam predict --help)"),
                          (["bogus"], "error: argument COMMAND: invalid choice: 'bogus'")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1 and "usage" not in err


def test_running_out_of_memory_is_one_line_and_another_fault_its_traceback(capsys):
    import pytest

    from napari_mr_reparam.command import command_parser, run_cli

    torch_says = RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
                              "you tried to allocate 15998976 bytes. Error code 12 (Cannot allocate memory)")
    parser, sub = command_parser("tool", "Does one thing.")
    for name, exc in (("torch", torch_says), ("numpy", MemoryError()), ("bug", RuntimeError("a bug"))):
        sub.add_parser(name).set_defaults(func=lambda args, exc=exc: (_ for _ in ()).throw(exc))
    assert run_cli(parser, ["torch"]) == 2
    assert capsys.readouterr().err == (
        "error: out of memory (a block of 15 MB more was asked for): close other programs, give fewer or smaller "
        "inputs (fewer slices, a crop), or run on a machine with more memory\n")
    assert run_cli(parser, ["numpy"]) == 2 and capsys.readouterr().err.startswith("error: out of memory: close")
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli(parser, ["bug"])


def test_sigterm_and_ctrl_c_stop_with_their_status_after_the_clean_up_runs(capsys):
    import os
    import signal
    import time

    from napari_mr_reparam.command import command_parser, run_cli

    cleaned = []

    def stopped_by(sig):
        def job(args):
            try:
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the signal's handler raises before this ends
                return 0
            finally:
                cleaned.append(sig)  # as a half-written output's temporary file is removed
        return job

    parser, sub = command_parser("tool", "Does one thing.")
    sub.add_parser("term").set_defaults(func=stopped_by(signal.SIGTERM))
    sub.add_parser("int").set_defaults(func=stopped_by(signal.SIGINT))
    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(parser, ["term"]) == 143
    assert capsys.readouterr().err == "error: terminated (SIGTERM); what was not finished was not written\n"
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job ignores Ctrl-C
    try:
        assert run_cli(parser, ["int"]) == 130
    finally:
        signal.signal(signal.SIGINT, interrupt)
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C); what was not finished was not written\n"
    assert cleaned == [signal.SIGTERM, signal.SIGINT] and signal.getsignal(signal.SIGTERM) is before


def test_every_example_in_the_help_parses():
    import shlex

    from napari_mr_reparam.cli import PREDICT_EXAMPLES, build_parser
    from napari_mr_reparam.cli_joint import MAPS_EXAMPLES

    parser = build_parser()
    for example in (*PREDICT_EXAMPLES, *MAPS_EXAMPLES):
        argv = shlex.split(example)
        assert argv[0] == "napari-mr-reparam"
        assert callable(parser.parse_args(argv[1:]).func), example
    assert "examples:\n  napari-mr-reparam predict scan.nii.gz" in parser._subparsers._group_actions[0].choices[
        "predict"].format_help()
    from napari_mr_reparam.training.cli import build_parser as train_parser

    train = train_parser()
    for name, command in train._subparsers._group_actions[0].choices.items():
        for line in (command.epilog or "").splitlines()[1:]:
            argv = shlex.split(line)
            argv = argv[argv.index(name):]  # after the program (napari-mr-reparam-train, or torchrun's module)
            assert callable(train.parse_args(argv).func), line
