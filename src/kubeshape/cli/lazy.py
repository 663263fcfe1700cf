"""Commands whose modules are imported only when they are used, so that quick commands start quickly."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer import _click  # the Click that Typer builds its commands with
from typer.core import TyperGroup


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command or sub-app of a :class:`LazyGroup`, known by name and summary until it is used."""

    summary: str  # the first sentence of its help: what the parent's command list shows
    load: Callable[[], typer.Typer | Callable[..., Any]]  # imports its module: a sub-app or a command function
    group: bool = False


def _stand_in() -> None:
    """Registered in place of a lazy command; the group swaps the real one in before anything runs it."""


def add_stand_ins(app: typer.Typer, commands: dict[str, LazyCommand]) -> None:
    """Register ``commands`` on ``app`` under their names and summaries, in order, without importing them."""
    for name, spec in commands.items():
        if spec.group:
            app.add_typer(typer.Typer(), name=name, help=spec.summary)
        else:
            app.command(name, help=spec.summary)(_stand_in)


def _plain_values(params: list[_click.Parameter]) -> None:
    """Let on/off flags and plain text values through as they are. Typer builds a Pydantic validator for every
    parameter whose value is not a bool (``--install-completion`` is None unless given; ``kubeshape rule KS101``
    has a text argument), and importing Pydantic for that costs more than the rest of a quick command. A flag is
    only ever True, False or None; a ``str`` parameter without a parser only ever gets text from the command line
    or its text default, which the validator would return unchanged."""
    try:
        from typer._coercion import PassThroughRuntimeParam
    except ImportError:  # a Typer that does not validate through Pydantic
        return
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(param, "_runtime_param", False) is not None or descriptor is None:
            continue
        info = descriptor.parameter_info
        flag = getattr(param, "is_flag", False) and descriptor.annotation is bool
        text = descriptor.annotation is str and getattr(info, "parser", None) is None \
            and getattr(info, "click_type", None) is None
        if flag or text:
            param._runtime_param = PassThroughRuntimeParam(  # type: ignore[attr-defined]
                parameter_info=info, annotation=descriptor.annotation)


class _Commands(MutableMapping[str, "_click.Command"]):
    """The group's commands: looking one up loads it; listing the names does not."""

    def __init__(self, group: LazyGroup, commands: MutableMapping[str, _click.Command]) -> None:
        self._group = group
        self._commands = commands
        self._pending = {name for name in group.lazy if name in commands}

    def stand_in(self, name: str) -> _click.Command | None:
        """The command as listed: its stand-in while it is not loaded."""
        return self._commands.get(name)

    def __getitem__(self, name: str) -> _click.Command:
        if name in self._pending:
            self._commands[name] = self._group.load(name)
            self._pending.discard(name)
        return self._commands[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._pending.discard(name)
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        self._pending.discard(name)
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


class LazyGroup(TyperGroup):
    """A Typer group whose ``lazy`` commands are imported on first use: running one, its own ``--help``, shell
    completion. The group's ``--help`` lists them by their summaries. Register them with :func:`add_stand_ins`."""

    lazy: ClassVar[dict[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self, self.commands)
        self._listing = False

    def load(self, name: str) -> _click.Command:
        """The real command ``name``, built as if it had been registered on this group's app."""
        target = self.lazy[name].load()
        host = typer.Typer(rich_markup_mode=self.rich_markup_mode, suggest_commands=self.suggest_commands)
        if isinstance(target, typer.Typer):
            host.add_typer(target, name=name)
        else:
            host.command(name)(target)
        return typer.main.get_group(host).commands[name]

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        _plain_values(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if self._listing and isinstance(self.commands, _Commands):
            return self.commands.stand_in(cmd_name)
        command = self.commands.get(cmd_name)
        if command is not None:
            _plain_values(command.get_params(ctx))
        return command

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False
