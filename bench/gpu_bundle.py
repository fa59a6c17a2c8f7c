"""Take a study to a borrowed GPU machine that has none of its inputs, through a transfer limit of
64 MiB per call (this workplace's `device` tool; any `scp` with a quota works the same way):

    python -m bench.gpu_bundle pack [--out .gpu]      # here: .gpu/a and .gpu/b, each call under 64 MiB
    python -m bench.gpu_bundle install --parts DIR... # there: a data folder that trains as here does

What travels, and why:
  - the LM as its pinned GGUF (SmolLM2-135M-Instruct, Q4_1: 98 MB, against 538 MB for the fp32
    safetensors it converts to), split in two parts; the install converts it with that machine's
    transformers and refuses to go on unless every tensor's bytes equal the ones converted here
    (sha256 per tensor), and copies this machine's tokenizer files over the converted ones;
  - each image's encoder feature pooled to one token (fp32, what the default image_tokens = 1
    trains on; 17 MB) instead of the images (50 MB) and the encoder (25 MB of weights and its
    package). On the GPU machine the encoder is a stand-in that refuses to encode, since every
    feature is cached, and that holds the first 4096 values of each real encoder weight: the frozen
    checksum a run records there is the one this machine computes, so a run that comes back loads
    and evaluates here like a run trained here;
  - the dataset's tables, without its images: each image's id and file sha256 (the feature cache's
    key) are in the bundle.

`activate()` (called by bench.gpu_slot) installs the stand-ins in the running process. Nothing
here is used by the app or the CLI.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

BUNDLE_JSON = "bundle.json"
LM_ID = "smollm2-135m"
CALL_BYTES = 64 * 2 ** 20        # what one `run` call carries: the working tree and one part
LM_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "taxolens-asset.json")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_bytes(root: Path = Path(".")) -> int:
    """What every call carries besides its part: the tracked files and the untracked ones git does
    not ignore (the device tool's copy of the working tree)."""
    import subprocess
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, check=True).stdout.decode().split("\0")
    return sum((root / n).stat().st_size for n in names if n and (root / n).is_file() and not (root / n).is_symlink())


def split_point(gguf_bytes: int, rest_of_b: int, tree: int) -> int:
    """Where the GGUF splits so that both calls (part a: the GGUF's head; part b: its tail and the
    data) carry the same, each with the tree; SystemExit, with the sizes, when one cannot fit."""
    head = min((gguf_bytes + rest_of_b + 1) // 2, gguf_bytes)
    calls = (tree + head, tree + gguf_bytes - head + rest_of_b)
    if max(calls) > CALL_BYTES:
        raise SystemExit(f"the calls would carry {calls[0] / 1e6:.1f} and {calls[1] / 1e6:.1f} MB (a working tree "
                         f"of {tree / 1e6:.1f} MB with each part), over the {CALL_BYTES / 1e6:.1f} MB one call "
                         f"takes: make the working tree smaller (untracked files git does not ignore count too)")
    return head


def tensor_digest(t: torch.Tensor) -> str:
    return _sha(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())


def encoder_prefixes(encoder: nn.Module) -> list[torch.Tensor]:
    """What checkpoint.frozen_checksum reads of an encoder: the first 4096 values of each weight."""
    return [p.detach().reshape(-1)[:4096].float().clone() for _, p in sorted(encoder.named_parameters())]


# ---------------------------------------------------------------------------------------- here

def pack(out: Path) -> dict:
    from core import assets, features, paths, runs
    from core.data import datasets
    from core.models import registry

    spec, src = assets.KNOWN_LMS[LM_ID], assets.source(LM_ID, kind="lm")
    gguf = assets._installed_file(src, spec.gguf, record=False)
    lm_dir = assets.lm_dir(LM_ID)
    ds = datasets.load_dataset()
    encoder = registry.create_encoder("efficientnet-lite2")
    a, b = out / "a", out / "b"
    shutil.rmtree(out, ignore_errors=True)
    tree = tree_bytes()          # before the parts exist: `out` is git-ignored (.gpu is), so they do not count
    (b / "lm").mkdir(parents=True)
    a.mkdir(parents=True)

    lm_tensors = {name: tensor_digest(t) for name, t in load_file(lm_dir / "model.safetensors").items()}
    for name in LM_FILES:
        if (lm_dir / name).is_file():
            (b / "lm" / f"{name}.gz").write_bytes(gzip.compress((lm_dir / name).read_bytes(), 9))

    shutil.copytree(ds.root, b / "dataset", ignore=shutil.ignore_patterns("images"))
    images = ds.images
    pooled = features.FeatureCache(encoder).get(images, pool=1)           # (N, 1, D) fp32, as training sees it
    save_file({"pooled": pooled.contiguous()}, b / "features.safetensors")
    save_file({str(i): t for i, t in enumerate(encoder_prefixes(encoder))}, b / "encoder_prefix.safetensors")
    site = Path(__import__("gguf").__file__).parent
    shutil.copytree(site, b / "site" / "gguf", ignore=shutil.ignore_patterns("__pycache__"))
    bundle = {
        "lm": LM_ID, "gguf": spec.gguf, "gguf_sha256": src.sha256, "lm_tensors": lm_tensors,
        "dataset": ds.name,
        "images": [[str(im.path.relative_to(ds.root)), features.file_sha256(im.path)] for im in images],
        "encoder": {"id": encoder.id, "dim": encoder.dim, "image_size": encoder.image_size,
                    "transform_id": encoder.transform_id, "weights_id": encoder.weights_id,
                    "cache_key": encoder.cache_key},
        "made_with": {"torch": torch.__version__, "data": str(paths.data_dir())},
        "git_commit": runs.git_commit(),       # the GPU machine's copy of the tree has no .git
    }
    (b / BUNDLE_JSON).write_text(json.dumps(bundle))
    data = gguf.read_bytes()
    try:
        head = split_point(len(data), _folder_bytes(b), tree)
    except SystemExit:
        shutil.rmtree(out, ignore_errors=True)      # no half-made bundle left to send
        raise
    (a / "gguf.part0").write_bytes(data[:head])
    (b / "gguf.part1").write_bytes(data[head:])
    sizes = {p.name: _folder_bytes(p) for p in (a, b)}
    return {"out": str(out), "bytes": sizes, "tree_bytes": tree,
            "call_margin_bytes": CALL_BYTES - tree - max(sizes.values()), "images": len(images)}


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# ---------------------------------------------------------------------------------------- there

def _find(parts: list[Path], name: str) -> Path:
    for p in parts:
        if (p / name).exists():
            return p / name
    raise SystemExit(f"{name} is in none of {', '.join(map(str, parts))}: did every part arrive?")


def install(parts: list[Path], data_dir: Path) -> dict:
    """Build data_dir (use it as TAXOLENS_DATA) from the parts: the LM converted and verified, the
    dataset's tables and the pooled feature cache."""
    import time
    bundle = json.loads(_find(parts, BUNDLE_JSON).read_text())
    t0 = time.perf_counter()
    gguf_bytes = _find(parts, "gguf.part0").read_bytes() + _find(parts, "gguf.part1").read_bytes()
    if _sha(gguf_bytes) != bundle["gguf_sha256"]:
        raise SystemExit("the GGUF parts do not add up to the pinned file (sha256 differs)")
    out = data_dir / "models" / bundle["lm"]
    if not (out / "taxolens-asset.json").is_file():
        _convert_lm(gguf_bytes, bundle, _find(parts, "lm"), out)

    root = data_dir / "datasets" / bundle["dataset"]
    if not root.is_dir():
        shutil.copytree(_find(parts, "dataset"), root)

    cache = data_dir / "features" / bundle["encoder"]["cache_key"]
    pooled = load_file(_find(parts, "features.safetensors"))["pooled"]
    for (_, sha), grid in zip(bundle["images"], pooled):
        path = cache / sha[:2] / f"{sha}.safetensors"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"grid": grid.contiguous()}, path)
    return {"data": str(data_dir), "images": len(bundle["images"]), "seconds": round(time.perf_counter() - t0, 1)}


def _convert_lm(gguf_bytes: bytes, bundle: dict, lm_files: Path, out: Path) -> None:
    import tempfile
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / bundle["gguf"]).write_bytes(gguf_bytes)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=bundle["gguf"], dtype=torch.float32)
    differ = sorted(n for n, t in model.state_dict().items()
                    if n in bundle["lm_tensors"] and tensor_digest(t) != bundle["lm_tensors"][n])
    missing = sorted(set(bundle["lm_tensors"]) - set(model.state_dict()))
    if differ or missing:
        raise SystemExit(f"the LM converted here differs from the one converted where the bundle was made: "
                         f"{len(differ)} tensors differ ({differ[:3]}), {len(missing)} missing ({missing[:3]})")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for gz in sorted(lm_files.glob("*.gz")):       # the marker last: it says the folder is complete
        if gz.name != "taxolens-asset.json.gz":
            (out / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    (out / "taxolens-asset.json").write_bytes(gzip.decompress((lm_files / "taxolens-asset.json.gz").read_bytes()))


class CachedOnlyEncoder(nn.Module):
    """Stands in for the real encoder where only its cached features travelled: the same id, size
    and cache key, and the first 4096 values of each weight (all frozen_checksum reads)."""

    def __init__(self, spec: dict, prefixes: list[torch.Tensor]):
        super().__init__()
        self.id, self.dim, self.image_size = spec["id"], spec["dim"], spec["image_size"]
        self.transform_id, self.weights_id = spec["transform_id"], spec["weights_id"]
        self.prefixes = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in prefixes])


def activate(parts: list[Path]) -> None:
    """Install the stand-ins in this process: images are found by their recorded sha256, and the
    encoder is built from the bundle, without its weights."""
    from core import features, runs
    from core.models import encoders, registry

    bundle = json.loads(_find(parts, BUNDLE_JSON).read_text())
    sha_of = {rel: sha for rel, sha in bundle["images"]}
    prefix_file = load_file(_find(parts, "encoder_prefix.safetensors"))
    prefixes = [prefix_file[str(i)] for i in range(len(prefix_file))]

    class Stand(CachedOnlyEncoder, encoders.ImageEncoder):
        def __init__(self):
            CachedOnlyEncoder.__init__(self, bundle["encoder"], prefixes)
            self.freeze()

        def preprocess(self, image):
            raise RuntimeError("this machine has the encoder's cached features only, not the encoder")

        _grid = preprocess

    def file_sha256(path) -> str:
        path = Path(path)
        key = "/".join(path.parts[-3:])             # images/<concept>/<style>.png, as images.csv says
        if key in sha_of:
            return sha_of[key]
        return hashlib.sha256(path.read_bytes()).hexdigest()

    stand_key = Stand().cache_key
    if stand_key != bundle["encoder"]["cache_key"]:
        raise SystemExit(f"the stand-in encoder's feature cache key {stand_key} is not the bundle's "
                         f"{bundle['encoder']['cache_key']}: the cached features would not be found")
    features.file_sha256 = file_sha256
    if bundle.get("git_commit"):
        runs.git_commit = lambda: bundle["git_commit"]
    registry.ENCODER_BUILDERS["efficientnet"] = lambda encoder_id, name, source: Stand()
    real_check = registry._encoder_weights
    registry._encoder_weights = lambda family, name, source: None if family == "efficientnet" \
        else real_check(family, name, source)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("pack")
    sp.add_argument("--out", type=Path, default=Path(".gpu"))
    si = sub.add_parser("install")
    si.add_argument("--parts", type=Path, nargs="+", required=True)
    si.add_argument("--data", type=Path, required=True)
    args = p.parse_args(argv)
    result = pack(args.out) if args.cmd == "pack" else install(args.parts, args.data)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
