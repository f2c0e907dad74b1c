"""``--help`` of every console script explains every option (several printed a bare
``--epochs EPOCHS`` with no default or meaning)."""

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from egeunet import cli

MAINS = [cli.train_main, cli.eval_main, cli.export_main, cli.predict_main, cli.bench_main, cli.armlab_main]


@pytest.mark.parametrize("main", MAINS, ids=lambda m: m.__name__)
def test_every_option_has_help(main, monkeypatch, capsys):
    actions = []
    original = argparse._ActionsContainer.add_argument

    def recording(self, *args, **kwargs):
        action = original(self, *args, **kwargs)
        actions.append(action)
        return action

    monkeypatch.setattr(argparse._ActionsContainer, "add_argument", recording)
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert len(actions) > 2  # the parser was built through the recorder
    bare = [a.option_strings or a.dest for a in actions if not a.help and a.dest != "help"]
    assert not bare, f"options without help text: {bare}"
    assert "usage:" in capsys.readouterr().out


DOCS = ["README.md", "BENCHMARKS.md", "egeunet/model/MODEL_CARD.md", "android_demo/README.md",
        *(str(p) for p in sorted(Path("docs").rglob("*.md")))]
COMMAND = re.compile(r"(?:\begeunet-(train|eval|export|predict|bench|armlab)|python -m (egeunet(?:\.\w+)+))"
                     r"((?: [^`|\n]*)?)")
TEMPLATED = ("[", "...", "…", "$", "{", ";", "<")  # usage summaries and shell loops, not runnable lines


def documented_commands():
    root = Path(__file__).resolve().parents[1]
    found = {}
    for doc in DOCS:
        lines = (root / doc).read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            for m in COMMAND.finditer(line):
                text = line[m.start():]
                if line[:m.start()].count("`") % 2 and "`" not in text and n < len(lines):
                    text += " " + lines[n].strip()  # an inline `command` wrapped onto the next line
                m = COMMAND.match(text)
                args = m.group(3).split(" #")[0].strip()
                if len(args.split()) == 1 and args.startswith("--"):
                    continue  # a flag named in prose ("`egeunet-eval --model` scores ..."), not a command
                if any(re.fullmatch(r"[A-Z_]{3,}", token) for token in args.split()):
                    continue  # a placeholder (python -m egeunet.benchmarks.tflite_levers LEVER)
                if args and not any(t in args for t in TEMPLATED):
                    program = f"egeunet-{m.group(1)}" if m.group(1) else f"python -m {m.group(2)}"
                    found.setdefault(f"{program} {args}", f"{doc}:{n}")
    return sorted(found.items())


COMMANDS = documented_commands()


class Parsed(Exception):
    """Raised in place of running the command once its arguments parsed."""


@pytest.mark.parametrize("command,where", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_documented_command_line_parses(command, where, monkeypatch, capsys):
    """A flag renamed or removed (or a module moved) must not leave the docs showing commands
    that fail."""
    if command.startswith("python -m "):
        _, _, module, *args = shlex.split(command)
        main = importlib.import_module(module).main
    else:
        name, *args = shlex.split(command)
        main = getattr(cli, f"{name.split('-')[1]}_main")
    original = argparse.ArgumentParser.parse_args

    def parse_only(self, argv=None, namespace=None):
        original(self, argv, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    try:
        main(args)
    except Parsed:
        return
    except SystemExit:
        pass
    pytest.fail(f"{where}: `{command}` does not parse: {capsys.readouterr().err.strip()}")


def test_the_docs_hold_the_headline_commands():
    commands = [c for c, _ in COMMANDS]
    assert "egeunet-export --target tflite --int8" in commands
    assert any(c.startswith("python -m egeunet.benchmarks.train_throughput --") for c in commands)
    assert len(commands) > 30
