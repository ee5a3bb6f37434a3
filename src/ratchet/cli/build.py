"""``ratchet build``: a registered model version as a deployable bundle directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ratchet.cli.output import add_row, key_values, print_all, print_json, short_digest, table
from ratchet.cli.session import Session


def build(
    model_uri: Annotated[
        str,
        typer.Argument(help="churn@champion, churn/3, models:/churn@champion, models:/churn/latest."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the bundle into.")
    ],
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", help="Deployment name (default: the model name)."),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port the server listens on.")
    ] = 8080,
    replicas: Annotated[
        int,
        typer.Option("--replicas", min=1, help="Kubernetes replicas (the autoscaler's minimum)."),
    ] = 2,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image name for the manifests (default: <deployment>:v<N>)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing bundle in the directory.")
    ] = False,
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Bundle a model whose format runs code when loaded "
                     "(cloudpickle); the bundle's server then loads it. Only for models "
                     "from a trusted source."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Write a self-contained deployment bundle: the model, pinned requirements, a
    Dockerfile and Kubernetes manifests. Aliases are resolved to a version now."""
    from ratchet.serving.bundle import build_bundle

    bundle = build_bundle(
        model_uri,
        output,
        deployment=deployment,
        workspace=Session().workspace,
        port=port,
        replicas=replicas,
        image=image,
        overwrite=overwrite,
        trust=trust,
    )
    if as_json:
        print_json(bundle.to_dict())
        return
    info = bundle.info
    summary = key_values(
        [
            ("model", f"{info.model_uri} (from {info.resolved_from})"),
            ("content", short_digest(info.content_hash)),
            ("flavor", info.flavor),
            ("deployment", info.deployment),
            ("image", info.image),
            ("port", info.port),
        ],
        title=f"wrote bundle {bundle.directory}",
    )
    files = table("file", title="files")
    for name in bundle.files:
        add_row(files, name)
    next_steps = key_values(
        [
            ("run here", f"ratchet serve --bundle {bundle.directory}"),
            ("image", f"docker build -t {info.image} {bundle.directory}"),
            ("cluster", f"kubectl apply -f {bundle.directory / 'k8s'}"),
        ],
        title="next",
    )
    print_all(summary, files, next_steps)
