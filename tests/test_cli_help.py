"""``--help`` of every console script explains every option (several printed a bare
``--epochs EPOCHS`` with no default or meaning)."""

import argparse

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
