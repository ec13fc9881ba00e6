"""run_command: how every command line turns a user's mistake or Ctrl-C into an exit status."""

from __future__ import annotations

import pytest

from k8s_gpu_rl.errors import ConfigError, run_command


def test_the_work_s_own_status_is_returned(capsys) -> None:
    assert run_command(lambda: 7, "interrupted") == 7
    assert capsys.readouterr().err == ""


def test_a_users_mistake_is_exit_2_with_its_message(capsys) -> None:
    def work() -> int:
        raise ConfigError("--repeats must be >= 1, got 0")

    assert run_command(work, "interrupted") == 2
    assert capsys.readouterr().err == "error: --repeats must be >= 1, got 0\n"


def test_ctrl_c_is_exit_130_with_the_commands_message(capsys) -> None:
    def work() -> int:
        raise KeyboardInterrupt

    assert run_command(work, "error: interrupted; resume with --out") == 130
    assert capsys.readouterr().err == "error: interrupted; resume with --out\n"


def test_a_bug_keeps_its_traceback() -> None:
    def work() -> int:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_command(work, "interrupted")
