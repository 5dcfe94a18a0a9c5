"""`xsearch world ...`: the generated tri-modal world."""

import typer

app = typer.Typer(help="Generate the synthetic tri-modal world (images, captions, sounds).", no_args_is_help=True)
