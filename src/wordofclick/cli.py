"""The ``woc`` command line. Each command parses options and calls one library function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from wordofclick.errors import ConfigError, DataError, ModelFolderError, exit_code_for

USER_ERRORS = (ConfigError, DataError, ModelFolderError, FileNotFoundError)


class WocGroup(click.Group):
    """Turns the library's user-facing errors into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(exit_code_for(error))


@click.group(cls=WocGroup)
@click.version_option(package_name="wordofclick")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
def main(verbose: bool) -> None:
    """wordofclick: find which reviews complain about service attitude, and how loud they are."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )


overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
existing_path = click.Path(exists=True, path_type=Path)
