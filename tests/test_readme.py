"""The README's commands are true: the test command is what CI runs, the options exist."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def test_the_test_command_is_what_ci_runs():
    main_job, tests = (block.strip() for block in _bash_blocks()[:2])
    assert main_job.endswith("napari-mr-reparam demo")
    ci = (ROOT / ".ci" / "run").read_text()
    ci_installs = [shlex.split(line) for line in ci.splitlines() if "pip install" in line]
    for step in tests.split(" && "):
        if step.startswith("pip install"):
            wanted = [w for w in shlex.split(step)[2:] if not w.startswith("-")]
            assert any(set(wanted) <= set(line) for line in ci_installs), f"{step!r} is not in .ci/run"
        else:
            assert step == ci.strip().splitlines()[-1], f"{step!r} is not .ci/run's last command"


def test_the_predict_examples_parse():
    from napari_mr_reparam.cli import build_parser

    parser = build_parser()
    examples = [line for block in _bash_blocks() for line in block.replace("\\\n", " ").splitlines()
                if line.startswith("napari-mr-reparam predict")]
    assert len(examples) >= 3
    for line in examples:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.func.__name__ == "cmd_predict"


def test_the_screenshot_command_is_the_script_in_docs():
    assert 'python docs/make_screenshot.py' in README and (ROOT / "docs" / "make_screenshot.py").is_file()
    assert "1600x1000" in README and "../shared" in README
