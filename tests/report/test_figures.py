"""Report figures: one error colour scale for every method, colour bar, training-log panels."""

from __future__ import annotations

import base64

import pytest
import torch

from sweettok.report import figures


def test_difference_maps_share_one_scale_with_a_colour_bar():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(3, 5, 16, 16, generator=g) - 0.5
    small = truth + 0.02 * torch.randn(truth.shape, generator=g)
    large = truth + 0.3 * torch.randn(truth.shape, generator=g)
    errors = [figures.pixel_error(r, truth) for r in (small, large)]
    assert (errors[1].mean() > 5 * errors[0].mean()) and errors[0].shape == (5, 16, 16)
    vmax = figures.shared_error_scale(errors)
    q = float(torch.quantile(torch.cat([e.flatten() for e in errors]), 0.99))
    assert q <= vmax < q + 0.05 and round(vmax * 20, 6) == int(round(vmax * 20))
    frames = figures.evenly_spaced(5, 3)
    assert frames == [0, 2, 4]
    fig = figures.reconstruction_over_time(truth, {"proxy": small, "SweetTok": large}, frames, vmax, title="clip")
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == figures.ERROR_CMAP]
    assert len(maps) == 2 * len(frames)  # one row of difference maps per method
    assert all(im.get_clim() == (0.0, vmax) for im in maps)
    assert len(fig.axes) == 5 * len(frames) + 1  # five rows of frames and the colour bar
    png = base64.b64decode(figures.png_data_uri(fig).split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_log_panels():
    header = ["step", "epoch", "loss/model", "ce", "diversity", "adj_used", "adj_perplexity", "lr/model",
              "time/sec_per_step"]
    rows = [{"step": str(s), "epoch": "0", "loss/model": str(5 - s), "ce": str(4 - s), "diversity": str(-0.1 * s),
             "adj_used": str(0.1 * s), "adj_perplexity": str(2.0 * s), "lr/model": "0.001", "time/sec_per_step": "1"}
            for s in range(1, 4)]
    assert figures.loss_columns(header) == (["loss/model"], ["ce", "diversity"])
    fig = figures.training_curves(header, rows, "phase 1")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["total loss", "loss terms and scores", "terms that can be <= 0"]
    assert fig.axes[0].get_yscale() == "log" and fig.axes[2].get_yscale() == "linear"
    usage = figures.book_usage({"phase 1": (header, rows), "empty": (["step", "mse"], rows)})
    assert [ax.get_legend_handles_labels()[1] for ax in usage.axes] == [["adj"], ["adj"]]
    assert figures.book_usage({"phase 2": (["step", "mse"], rows)}) is None
    assert figures.training_curves(header, [], "nothing") is None


@pytest.mark.parametrize("frames,count,expected", [(17, 9, [0, 2, 4, 6, 8, 10, 12, 14, 16]), (17, 5, [0, 4, 8, 12, 16]),
                                                    (1, 5, [0]), (3, 9, [0, 1, 2])])
def test_evenly_spaced_frames(frames, count, expected):
    assert figures.evenly_spaced(frames, count) == expected
