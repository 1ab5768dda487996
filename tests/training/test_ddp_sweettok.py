"""Phase-1 training of the base-profile SweetTok under `torchrun --nproc_per_node 2` (gloo):
after a few steps both ranks hold identical weights, and only rank 0 wrote checkpoints."""

import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from sweettok.training.checkpoint import latest_checkpoint, load_state_file
from torchrun_launch import run_torchrun

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import yaml
    from safetensors.torch import save_file
    from sweettok.models.codebook_prior import CodebookPrior
    from sweettok.models.config import SweetTokConfig
    from sweettok.models.sweettok import SweetTok
    from sweettok.training.tokenizer_training import PhaseConfig, train_phase1

    torch.set_num_threads(1)
    args = json.loads(sys.argv[1])
    model_cfg = SweetTokConfig.from_dict(yaml.safe_load(open(args["conf"]))["model"])


    class ClipsAndCodes(torch.utils.data.Dataset):
        def __init__(self, n):
            g = torch.Generator().manual_seed(5)
            self.clips = torch.rand(n, 3, 17, model_cfg.resolution, model_cfg.resolution, generator=g) - 0.5
            grid = model_cfg.resolution // model_cfg.patch_size
            self.codes = torch.randint(0, model_cfg.proxy_vocab_size, (n, 5, grid, grid), generator=g)

        def __len__(self):
            return len(self.clips)

        def __getitem__(self, i):
            return {"clip": self.clips[i], "codes": self.codes[i], "index": i}


    torch.manual_seed(0)  # the same initial weights on both ranks
    model = SweetTok(model_cfg, CodebookPrior.random(n_adj=24, n_noun=40, n_adv=16, n_verb=30, embed_dim=48, seed=1))
    rank = int(os.environ["RANK"])
    save_file({k: v.clone().contiguous() for k, v in model.state_dict().items()},
              os.path.join(args["out"], f"initial_rank{rank}.safetensors"))
    cfg = PhaseConfig.from_dict({
        "optimizer": {"lr": 0.001}, "schedule": {"warmup_steps": 1},
        "loop": {"total_steps": 3, "batch_size": 1, "checkpoint_every": 3, "log_every": 1, "progress": False,
                 "device": "cpu", "seed": 3},
        "ema_decay": 0.9, "run_dir": args["run_dir"],
    })
    train_phase1(model, ClipsAndCodes(8), cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(args["out"], f"rank{rank}.safetensors"))
    """
)


def test_phase1_base_profile_two_gloo_processes(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    args = {"conf": str(REPO / "conf/base/parameters_model.yml"), "run_dir": str(tmp_path / "run"), "out": str(tmp_path)}
    run_torchrun(worker, args)
    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    start = load_file(str(tmp_path / "initial_rank0.safetensors"))
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.name == "step_00000003"
    saved = load_state_file(checkpoint / "model.safetensors")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k  # gradients were averaged over the ranks
        assert torch.equal(saved[k], w0[k]), k  # rank 0's checkpoint holds the final weights
    trained = [k for k in w0 if not torch.equal(w0[k], start[k])]
    assert len(trained) > 0.8 * sum(1 for k in w0 if not k.startswith("quantizer.") or "proj" in k)
    assert len((tmp_path / "run" / "train_log.csv").read_text().splitlines()) == 1 + 3
