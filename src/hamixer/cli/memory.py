"""``hamixer memory train``: the Energy MetaFormer as a denoising associative memory;
``hamixer memory capacity``: storage capacity of dense associative memories against theory."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "memory"
HELP = ("train the three-layer HAM (LayerNorm visible, two ReLU hidden) as a denoising memory; "
        "measure the storage capacity of dense associative memories")

DEFAULT_EPOCHS = {"digits": 100, "fashion-mnist": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train, then write a checkpoint and figures",
                       description="Train the Energy MetaFormer memory of THEORY §4 and write "
                                   "model.safetensors, config.json and three PNGs to --out.")
    t.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits")
    t.add_argument("--data-dir", default=None,
                   help="folder with IDX files (train-images-idx3-ubyte[.gz], ...); default "
                        "for fashion-mnist: $HAMIXER_DATA_DIR/fashion-mnist")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"default: {DEFAULT_EPOCHS['digits']} (digits), "
                        f"{DEFAULT_EPOCHS['fashion-mnist']} (fashion-mnist)")
    t.add_argument("--train-size", type=int, default=None,
                   help="use only the first N training images (default: all)")
    t.add_argument("--test-size", type=int, default=None,
                   help="evaluate on the first N test images (default: all)")
    t.add_argument("--hidden", type=int, default=900, help="units in each hidden layer")
    t.add_argument("--batch-size", type=int, default=512)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--steps", type=int, default=10, help="descent steps of recall")
    t.add_argument("--step-size", type=float, default=0.1, help="α of x ← x − α ∂E/∂g")
    t.add_argument("--noise", type=float, default=0.3, help="σ of the Gaussian corruption")
    t.add_argument("--init-scale", type=float, default=0.1,
                   help="synapse weights start as N(0, (scale/√visible)²): small, so that the "
                        "receptive fields show what training learned")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_capacity_arguments(sub)


def _add_capacity_arguments(sub) -> None:
    c = sub.add_parser(
        "capacity", help="storage capacity of Hopfield / dense associative memories vs theory",
        description="Store P patterns, corrupt each probe, run the dynamics and count a probe "
                    "as retrieved when its fixed point's overlap with its pattern is >= 0.99; "
                    "sweep P for several Lagrangians and N. Prints the table and writes "
                    "capacity.json, capacity.md and one capacity_<sweep>.png per sweep.")
    c.add_argument("--sweeps", default="classical,polynomial,exponential",
                   help="comma list of classical, polynomial, exponential (random ±1 patterns, "
                        "no data), images, beta (image patterns of --dataset)")
    c.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits",
                   help="image patterns of the images and beta sweeps")
    c.add_argument("--data-dir", default=None,
                   help="folder with Fashion-MNIST's IDX files; default "
                        "$HAMIXER_DATA_DIR/fashion-mnist")
    c.add_argument("--flip", type=float, default=0.1,
                   help="fraction of each ±1 probe's units flipped before the dynamics")
    c.add_argument("--probes", type=int, default=100, help="probes per memory")
    c.add_argument("--repeats", type=int, default=3,
                   help="independent memories per point (the polynomial sweep uses one fewer)")
    c.add_argument("--max-steps", type=int, default=50, help="synchronous updates at most")
    c.add_argument("--betas", default="2,8,32,128,512", help="β of the beta sweep")
    c.add_argument("--small", action="store_true",
                   help="the sweeps at small N (seconds: a first look, not the theory's limit)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace):
    from ..data import default_data_dir, load_digits_arrays, load_idx_dataset
    from ..errors import ConfigError

    if args.dataset == "digits":
        if args.data_dir:
            raise ConfigError("--data-dir is for IDX datasets; digits come with scikit-learn")
        return load_digits_arrays(True), load_digits_arrays(False)
    data_dir = args.data_dir or default_data_dir("fashion-mnist")
    if data_dir is None:
        raise ConfigError("Fashion-MNIST not found: pass --data-dir or set HAMIXER_DATA_DIR")
    return load_idx_dataset(data_dir, True), load_idx_dataset(data_dir, False)


def run(args: argparse.Namespace) -> int:
    if args.action == "capacity":
        return _run_capacity(args)
    import numpy as np
    import torch

    from ..device import select_device
    from ..errors import ConfigError
    from ..experiments.memory import (
        EnergyMemory,
        MemoryConfig,
        images_to_unit,
        save_memory,
        train_memory,
    )
    from ..runs import refuse_existing_run

    epochs = _check(args)
    refuse_existing_run(args.out)
    device = select_device(args.device)
    torch.manual_seed(args.seed)

    train_split, test_split = _load(args)
    shape = tuple(int(s) for s in train_split.images.shape[1:3])
    if train_split.images.ndim != 3:
        raise ConfigError(f"expected grayscale images [N, H, W], got {train_split.images.shape}")
    train = images_to_unit(train_split.images[: args.train_size]).to(device)
    test = images_to_unit(test_split.images[: args.test_size]).to(device)
    cfg = MemoryConfig(visible=shape[0] * shape[1], hidden=(args.hidden, args.hidden),
                       steps=args.steps, step_size=args.step_size, noise_std=args.noise,
                       init_scale=args.init_scale, image_shape=shape)
    model = EnergyMemory(cfg).to(device)
    result = train_memory(model, train, test, epochs, args.batch_size, args.lr, args.seed,
                          progress=not args.no_progress)
    descent = _figures(args, model, result, train, test, epochs, device)
    meta = dict(dataset=args.dataset, epochs=epochs, train_images=len(train),
                test_images=len(test), batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                device=str(device), train_seconds=round(result.seconds, 2),
                test_mse=result.test_mse, test_noisy_mse=result.test_noisy_mse,
                history=result.history, descent=descent)
    save_memory(model, args.out, meta)
    first, last = np.mean(descent["energy_first"]), np.mean(descent["energy_last"])
    trend = "decreased monotonically" if descent["monotone"] else "did NOT decrease monotonically"
    print(f"test MSE (vs LN(clean)): noisy input {result.test_noisy_mse:.4f} -> recalled "
          f"{result.test_mse:.4f}; energy from random starts {trend} ({first:.2f} -> "
          f"{last:.2f}); {result.seconds:.1f} s training; wrote {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Refuse out-of-range settings before anything runs; return the number of epochs."""
    from ..errors import ConfigError

    epochs = DEFAULT_EPOCHS[args.dataset] if args.epochs is None else args.epochs
    for name, value in (("--epochs", epochs), ("--hidden", args.hidden),
                        ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    for name, value in (("--lr", args.lr), ("--step-size", args.step_size),
                        ("--init-scale", args.init_scale)):
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
    if args.noise < 0:
        raise ConfigError(f"--noise must be >= 0, got {args.noise}")
    for name, value in (("--train-size", args.train_size), ("--test-size", args.test_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    return epochs


def _figures(args: argparse.Namespace, model: Any, result: Any, train: Any, test: Any,
             epochs: int, device: Any) -> dict[str, Any]:
    """Receptive fields, energy descent from random starts, denoising examples; returns what
    the descent measured."""
    from pathlib import Path

    import numpy as np
    import torch

    from ..plots import denoising_png, energy_descent_png, receptive_fields_png

    cfg, shape, out = model.cfg, model.cfg.image_shape, Path(args.out)
    label = f"{args.dataset}, {epochs} epochs, {len(train)} training images"
    receptive_fields_png(model.receptive_fields(1).cpu().numpy(), out / "receptive_fields.png",
                         f"Receptive fields: first 64 rows of W (hidden layer 1), {label}")
    gen = torch.Generator(device=device).manual_seed(args.seed + 7)
    starts = torch.randn(6, cfg.visible, generator=gen, device=device)
    descent_steps = 200
    finals, traj = model.recall(starts, steps=descent_steps, record=True)
    energies = traj.energy.cpu().numpy()
    monotone = bool((np.diff(energies, axis=0) <= 1e-4 * np.abs(energies[:-1]) + 1e-6).all())
    energy_descent_png(traj.t.numpy() / cfg.step_size, energies,
                       finals.detach().reshape(-1, *shape).cpu().numpy(),
                       out / "energy_descent.png",
                       f"Energy MetaFormer ({label}): descent from random visible states")
    gen = torch.Generator(device=device).manual_seed(args.seed + 11)
    clean = test[:10]
    noisy = clean + cfg.noise_std * torch.randn(clean.shape, generator=gen, device=device)
    with torch.no_grad():
        recalled, _ = model.recall(noisy)

    def to_img(t: torch.Tensor) -> np.ndarray:
        return t.detach().reshape(-1, *shape).cpu().numpy()

    denoising_png(to_img(model.target(noisy)), to_img(recalled), to_img(model.target(clean)),
                  out / "denoising.png",
                  f"Denoising (σ={cfg.noise_std}, {cfg.steps} steps), test images; shown as "
                  f"LN-standardized pixels. Test MSE: noisy {result.test_noisy_mse:.3f} → "
                  f"recalled {result.test_mse:.3f}")
    return dict(steps=descent_steps, starts=len(starts), energy_first=energies[0].tolist(),
                energy_last=energies[-1].tolist(), monotone=monotone)


def _capacity_config(args: argparse.Namespace):
    from ..errors import ConfigError
    from ..experiments.capacity import CapacityConfig

    sweeps = tuple(s.strip() for s in args.sweeps.split(",") if s.strip())
    try:
        betas = tuple(float(b) for b in args.betas.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--betas must be numbers, got {args.betas!r}") from None
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    cfg = CapacityConfig(sweeps=sweeps, flip=args.flip, probes=args.probes,
                         repeats=args.repeats, max_steps=args.max_steps, seed=args.seed,
                         dataset=args.dataset, betas=betas, small=args.small)
    cfg.check()
    return cfg


def _capacity_images(args: argparse.Namespace, cfg):
    """Training images ``[M, H, W]`` for the image sweeps, or None when none is asked for."""
    from ..errors import ConfigError

    if not {"images", "beta"} & set(cfg.sweeps):
        if args.data_dir:
            raise ConfigError("--data-dir is for the images and beta sweeps")
        return None
    return _load(args)[0].images


def _run_capacity(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ..errors import ConfigError
    from ..experiments.capacity import capacity_table, run_capacity
    from ..io import write_json, write_text
    from ..plots import plot_capacity

    cfg = _capacity_config(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    images = _capacity_images(args, cfg)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"criterion: a probe is retrieved when its fixed point's overlap with its pattern is "
          f">= 0.99; probes start with {cfg.flip:g} of their units flipped (±1 patterns)")
    result = run_capacity(cfg, images, progress=None if args.no_progress else _bar)
    table = capacity_table(result)
    print(table)
    write_json(out / "capacity.json", result)
    write_text(out / "capacity.md", table + "\n")
    for name, sweep in result["sweeps"].items():
        plot_capacity(name, sweep, out / f"capacity_{name}.png", 0.99)
    print(f"wrote {out}")
    return 0


def _bar(name: str):
    """A tqdm counter of the points of one sweep (stderr)."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=name, unit="point", leave=False)
    return lambda: bar.update(1)
