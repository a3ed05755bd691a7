"""The CLI's edges: its own mistakes as Kiln's one line (a misspelt mode or option, a missing value, for
every mode), exit codes, and `kiln --version`.

`KilnGroup` is the click group behind `kiln`: it turns click's usage errors into a `KilnError`
(printed by `kiln.cli.main`, exit 2), so a mode added later gets the same handling without a line
of its own. It also names the running mode for readers deep inside (`kiln.errors.current_mode`).

    kiln trian            -> kiln received mode=trian; no such mode. Did you mean train?
    kiln train --confg x  -> train received option=--confg; no such option. Did you mean --config?
    kiln train --config   -> train received option=--config; it needs a value. Example: --config FILE.
"""

from __future__ import annotations

import difflib
import sys

import typer
import typer.core

from kiln.errors import KilnError, current_mode, received, set_mode

try:  # typer 0.2x ships its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors


class KilnGroup(typer.core.TyperGroup):
    """`kiln MODE ...`: usage errors at any level become one KilnError line."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click_errors.NoArgsIsHelpError:
            raise  # plain `kiln`: the help, not an error (kiln.cli.main prints it)
        except click_errors.UsageError as err:
            raise KilnError(usage_line(err)) from None

    def resolve_command(self, ctx, args):
        try:
            name, command, rest = super().resolve_command(ctx, args)
        except click_errors.UsageError as err:
            if args and args[0] not in self.commands:
                raise KilnError(unknown_mode(args[0], list(self.commands))) from None
            raise KilnError(usage_line(err)) from None
        set_mode(name or "kiln")
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as err:  # the mode's own options: unknown, misspelt, missing a value
            raise KilnError(usage_line(err)) from None


def unknown_mode(name: str, modes: list[str]) -> str:
    near = difflib.get_close_matches(name, modes, n=1, cutoff=0.6)
    if near:
        return received("kiln", "mode", name, "no such mode", f"Did you mean {near[0]}?")
    return received("kiln", "mode", name, "no such mode", f"Modes: {', '.join(modes)}")


def _options(ctx) -> list[str]:
    if ctx is None:
        return []
    return sorted({opt for p in ctx.command.get_params(ctx) for opt in getattr(p, "opts", []) if opt.startswith("-")})


def usage_line(err) -> str:
    """One `<mode> received <key>=<value>; <why>. <fix>.` line for a click UsageError."""
    ctx = getattr(err, "ctx", None)
    mode = (ctx.info_name if ctx.parent is not None else "kiln") if ctx is not None else current_mode()
    where = f"kiln {mode}" if mode != "kiln" else "kiln"
    message = err.format_message().strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    if isinstance(err, click_errors.NoSuchOption):
        options = _options(ctx)
        near = sorted(err.possibilities or []) or difflib.get_close_matches(err.option_name, options, n=2, cutoff=0.5)
        if near:
            return received(mode, "option", err.option_name, "no such option", f"Did you mean {' or '.join(near)}?")
        return received(mode, "option", err.option_name, "no such option",
                        f"{where} takes {', '.join(options) or 'no options'}; its settings are key=value pairs ({where} --help)")
    if isinstance(err, click_errors.BadOptionUsage):
        if "requires" in message:
            return received(mode, "option", err.option_name, "it needs a value", f"Example: {err.option_name} FILE")
        return received(mode, "option", err.option_name, message, f"Run {where} --help")
    if isinstance(err, click_errors.BadParameter):
        param = getattr(err, "param", None)
        key = getattr(param, "name", None) or "argument"
        return received(mode, key, "<none>" if isinstance(err, click_errors.MissingParameter) else "?", message, f"Run {where} --help")
    given = " ".join(sys.argv[2:] if mode != "kiln" else sys.argv[1:]) or "<none>"
    return received(mode, "arguments", given, message, f"Run {where} --help")


def run_app(app, argv: list[str] | None) -> int:
    """Run the typer app; a KilnError (any user mistake) is one stderr line and exit 2, never a traceback."""
    try:
        code = app(args=argv, prog_name="kiln", standalone_mode=False)
    except KilnError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except click_errors.NoArgsIsHelpError as err:  # plain `kiln`: the help
        print(err.ctx.get_help())
        return 0
    except (typer.Abort, KeyboardInterrupt):
        print("kiln: interrupted", file=sys.stderr)
        return 130
    except SystemExit as err:
        return int(err.code or 0)
    except click_errors.ClickException as err:  # not a usage error (KilnGroup made those KilnErrors)
        err.show()
        return err.exit_code
    return code if isinstance(code, int) else 0


def print_version(value: bool) -> None:
    """`--version` callback: print the versions line and stop."""
    if value:
        print(versions_line())
        raise typer.Exit()


def versions_line() -> str:
    """`kiln --version`: Kiln's, TensorFlow's and Keras's versions, from package metadata (no TensorFlow import)."""
    import platform
    from importlib import metadata

    from kiln import __version__

    def version(*names: str) -> str:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return "not installed"

    tf = version("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tf-nightly")
    return f"kiln {__version__} (TensorFlow {tf}, Keras {version('keras')}, Python {platform.python_version()})"
