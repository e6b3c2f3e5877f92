"""Options shared by several commands, declared once."""

from __future__ import annotations

import click

DEFAULT_MODEL = "ssd-resnet34"


def int_list(text: str, option: str) -> list[int]:
    """'1,4, 8' -> [1, 4, 8]; every item must be a positive integer ('1,,4' and '4,' are refused)."""
    items = [item.strip() for item in text.split(",")]
    bad = [item for item in items if not item.isdigit() or int(item) < 1]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3])
        raise click.BadParameter(f"expected comma-separated positive integers, got {text!r} ({shown} is not one)",
                                 param_hint=option)
    return [int(item) for item in items]


def batch_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """click callback for batch-size lists (None stays None: the option was not given)."""
    return None if value is None else tuple(int_list(value, param.opts[0]))


def _model_names() -> list[str]:
    from ssdconvert.zoo import model_names

    return model_names()


def nms_policy_names() -> list[str]:
    """Every NMS policy name of the registered heads (each model accepts its own)."""
    from ssdconvert.zoo import all_specs

    return list(dict.fromkeys(name for spec in all_specs() for name in spec.head.policy_names))


def canvas_value(ctx, param, value: str | None) -> tuple[int, int] | str | None:
    """'800x1344' -> (800, 1344) (height x width); '320' -> (320, 320); 'exact' -> preprocess.spec.EXACT_CANVAS."""
    from preprocess.spec import EXACT_CANVAS

    if value is None:
        return None
    if value.strip().lower() == EXACT_CANVAS:
        return EXACT_CANVAS
    parts = value.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"expected HEIGHTxWIDTH in pixels (e.g. 800x1344), one size, or 'exact', got {value!r}")
    height, width = (int(parts[0]), int(parts[-1]))
    return height, width


canvas_option = click.option(
    "--canvas", default=None, callback=canvas_value, metavar="HxW|exact",
    help="Input canvas (height x width, multiples of 32) of a model whose input size is a deployment choice "
         "(faster-rcnn-r101-fpn: default 1344x1344; smaller canvases scale its resize rule down). 'exact': each "
         "image padded only to its own multiple of 32 (the reference at batch 1; CPU backends, batch 1 only) "
         "[default: the model's].")


model_option = click.option(
    "--model", "model_name", default=DEFAULT_MODEL, show_default=True, metavar="NAME",
    help="Detector from the zoo (see `ssdconvert models`).",
)


def weights_options(func):
    """--checkpoint, --backbone, --trust-checkpoint, --seed."""
    func = click.option("--seed", default=0, show_default=True, help="Seed for random weights when no checkpoint is given.")(func)
    func = click.option(
        "--trust-checkpoint", is_flag=True,
        help="Allow arbitrary unpickling (torch.load weights_only=False). Only for files you trust.",
    )(func)
    func = click.option(
        "--backbone", type=click.Path(dir_okay=False), default=None,
        help="Backbone weights in torchvision layout (e.g. resnet34-333f7ec4.pth), applied before the checkpoint.",
    )(func)
    func = click.option(
        "--checkpoint", type=click.Path(dir_okay=False), default=None,
        help="Trained weights (.pt/.pth). Without it: seeded random weights, clearly labelled.",
    )(func)
    return func


def backend_names() -> list[str]:
    from ssdconvert.backends import names

    return names()


def canonical_backend(name: str) -> str:
    """The backend's one name; a deprecated alias is accepted with one note on stderr."""
    from ssdconvert.backends import resolve
    from ssdconvert.errors import SsdConvertError

    try:
        backend, note = resolve(name)
    except SsdConvertError as exc:
        raise click.BadParameter(str(exc)) from None
    if note:
        click.echo(f"note: {note}", err=True)
    return backend.name


def _backend(ctx, param, value: str | None) -> str | None:
    return value if value in (None, "auto") else canonical_backend(value)


def backend_option(help: str):
    """--backend auto|<name>: checked against the backend registry (deprecated names noted)."""
    return click.option("--backend", default="auto", show_default=True, callback=_backend,
                        metavar="|".join(["auto", *backend_names()]), help=help)


def cluster_option(what: str):
    """`--cluster ADDRESS`: run `what` on a Ray cluster (Ray is imported only when it is given)."""
    return click.option("--cluster", default=None, metavar="ADDRESS",
                        help=f"Run {what} on a Ray cluster: auto (the cluster this host joined with `ray start`), "
                             "HOST:PORT (its head node), or local (a private single-node Ray for this command). "
                             "Needs `pip install 'ssdconvert[cluster]'`; README: Past one machine.")


def cluster_session(address: str | None):
    """The open cluster session for `--cluster`, or a no-op context without it."""
    import contextlib

    if not address:
        return contextlib.nullcontext()
    from ssdconvert.cluster import connected

    return connected(address, say=lambda line: click.echo(line, err=True))
