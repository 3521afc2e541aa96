"""`featviz-widgets microscope MODEL IMAGES... --out DIR`: `build_microscope` from the command
line, for a timm model name or a `module:function` that returns the model."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_microscope_command", "load_model", "run_microscope"]


def add_microscope_command(commands: Any) -> None:
    """The `microscope` subcommand on `commands` (argparse's subparsers)."""
    command = commands.add_parser(
        "microscope",
        help="build a static site of every unit of a model's layers over your images",
        description=(
            "Scan IMAGES with MODEL and write a static site to --out: per layer its units, per "
            "unit its top images cropped to what it sees, its statistics, its class "
            "contributions and (--looks-for) an optimised picture. Open OUT/index.html in a "
            "browser; no server or network needed."
        ),
    )
    command.add_argument(
        "model",
        help="a timm model name (e.g. resnet18) or module:function returning an nn.Module "
        "(the module is imported from the current folder or sys.path)",
    )
    command.add_argument("images", nargs="+", help="a folder of images, or image files")
    command.add_argument("--out", required=True, type=Path, help="the site's folder")
    command.add_argument(
        "--layers", help="comma-separated layer names (default: the model's stages and blocks)"
    )
    command.add_argument("--top-k", type=int, default=9, help="images per unit (default: 9)")
    command.add_argument(
        "--looks-for", action="store_true", help="also optimise a picture per unit (slow)"
    )
    command.add_argument("--looks-for-steps", type=int, default=256, help="(default: 256)")
    command.add_argument("--device", help="cpu, cuda, cuda:1... (default: CUDA if available)")
    command.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    command.add_argument(
        "--max-classes",
        type=int,
        default=5,
        help="classes the class contributions are computed towards (default: 5; 0: none)",
    )
    command.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue an interrupted scan in --out (default) or start over (--no-resume)",
    )
    command.add_argument(
        "--pretrained",
        action="store_true",
        help="with a timm model name: load its pretrained weights (a download)",
    )
    command.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg")
    command.add_argument("--no-progress", action="store_true", help="no progress bars")


def load_model(spec: str, pretrained: bool = False) -> Any:
    """The model `spec` names: `module:function` (called with no arguments) or a timm name."""
    if ":" in spec:
        module_name, _, function_name = spec.partition(":")
        if "" not in sys.path:
            sys.path.insert(0, "")  # the current folder, as `python -m` would
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
        function = getattr(module, function_name, None)
        if not callable(function):
            raise ValueError(f"{module_name!r} has no function {function_name!r}.")
        return function()
    import timm

    if not timm.list_models(spec) and spec not in timm.list_models(pretrained=True):
        close = timm.list_models(f"*{spec}*")[:5]
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(f"{spec!r} is not a timm model nor module:function.{hint}")
    return timm.create_model(spec, pretrained=pretrained)


def run_microscope(args: argparse.Namespace) -> int:
    """Build the site `args` ask for; print where it is. 1 with the reason on a bad input."""
    from .. import LayerNotFoundError, build_microscope

    images: Any = args.images[0] if len(args.images) == 1 else args.images
    if len(args.images) == 1 and Path(images).is_file():
        images = [images]
    layers = [name.strip() for name in args.layers.split(",")] if args.layers else None
    try:
        model = load_model(args.model, args.pretrained)
        index = build_microscope(
            model,
            images,
            args.out,
            layers=layers,
            top_k=args.top_k,
            looks_for=args.looks_for,
            looks_for_steps=args.looks_for_steps,
            device=args.device,
            batch_size=args.batch_size,
            max_classes=args.max_classes,
            resume=args.resume,
            image_format=args.image_format,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError, LayerNotFoundError) as exc:
        print(f"featviz-widgets microscope: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {index} (open it in a browser).")
    return 0
