"""Options shared by several commands, declared once."""

from __future__ import annotations

import click

DEFAULT_MODEL = "ssd-resnet34"


def finite_float(min: float | None = None, max: float | None = None, *, min_open: bool = False) -> click.FloatRange:
    """The click type of every float option: finite (nan and inf refused), within the bounds given."""
    from ssdconvert.backends.commands import FiniteFloat

    return FiniteFloat(min=min, max=max, min_open=min_open)


def batch_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """click callback for batch-size lists (None stays None: the option was not given); the one parser is
    shared with the backends' own commands (backends/commands.py), loaded only when a value is parsed."""
    from ssdconvert.backends.commands import batch_sizes as parse

    return parse(ctx, param, value)


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
        help="Trained weights (.pt/.pth). Without it: seeded random weights, clearly labelled. A family whose source "
             "is an ONNX file (ssd-mobilenet-v2-fpnlite) takes the .onnx here [default: its vendored release].",
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
                             "Needs `pip install 'ssdconvert[cluster]'`; see docs/cluster.md.")


def cluster_session(address: str | None):
    """The open cluster session for `--cluster`, or a no-op context without it."""
    import contextlib

    if not address:
        return contextlib.nullcontext()
    from ssdconvert.cluster import connected

    return connected(address, say=lambda line: click.echo(line, err=True))


def backend_params(command: str) -> list[click.Option]:
    """Every registered backend's own options for the generic `command` (Backend.cli_options), each named
    `<backend>.<field of its Options>`; two backends may not declare the same flag."""
    from ssdconvert.backends import all_backends

    params, owners = [], {}
    for backend in all_backends():
        for option in backend.cli_options(command):
            for flag in option.opts:
                if flag in owners:
                    raise TypeError(f"`ssdconvert {command}` {flag} is declared by both {owners[flag]} and "
                                    f"{backend.name}")
                owners[flag] = backend.name
            option.name = f"{backend.name}.{option.name}"
            params.append(option)
    return params


class BackendOptionsCommand(click.Command):
    """A generic command (run, bench, infer, quantize) that also takes each registered backend's own options for
    it, read from the registry whenever the command is parsed or shown (a backend registered later brings its
    options too). The callback gets them as `backend_options`: {backend name: its Options}."""

    @property
    def params(self) -> list[click.Parameter]:
        from ssdconvert.backends import all_backends

        registry = all_backends()  # the same tuple until the registry changes
        if self._params_for is not registry:  # one list of objects per registry: click appends to it and
            self._params = [*self.own_params, *backend_params(self.name)]  # orders by identity
            self._params_for = registry
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self.own_params, self._params_for = list(value), None

    def invoke(self, ctx: click.Context):
        from ssdconvert.backends import all_backends

        given: dict[str, dict] = {}
        for key in [k for k in ctx.params if "." in k]:
            backend, _, name = key.partition(".")
            given.setdefault(backend, {})[name] = ctx.params.pop(key)
        ctx.params["backend_options"] = {b.name: b.options_from(given.get(b.name, {})) for b in all_backends()}
        return super().invoke(ctx)


def with_tools(options: dict, tools: dict[str, str | None]) -> dict:
    """Each backend's options with its compiler executable from `tools` (name -> path), where its own option
    (e.g. `run --atc-tool`) did not set one."""
    from dataclasses import replace

    return {name: replace(o, tool=o.tool or tools.get(name)) for name, o in options.items()}
