"""What pipelines hand to each other are catalog datasets (so kedro-viz and dvc.yaml see every edge)."""

from __future__ import annotations

from pathlib import Path

from kedro.config import OmegaConfigLoader

from sweettok.pipeline_registry import register_pipelines

ROOT = Path(__file__).resolve().parents[1]

HANDOFFS = {
    # dataset: (catalog type, the pipeline writing it, the pipelines reading it)
    "clip_cache": ("sweettok.io.clip_cache_dataset.ClipCacheDataset", "patchify",
                   {"proxy", "tokenizer_phase1", "tokenizer_phase2", "reconstruction", "image_finetune", "lm",
                    "semantics", "evaluation"}),
    "proxy_codes": ("sweettok.io.proxy_codes_dataset.ProxyCodesDataset", "proxy", {"tokenizer_phase1"}),
    "proxy_tokenizer": ("sweettok.io.model_dataset.ModelDataset", "proxy",
                        {"tokenizer_phase1", "tokenizer_phase2", "reconstruction", "evaluation"}),
    "tokenizer_phase1": ("sweettok.io.model_dataset.ModelDataset", "tokenizer_phase1", {"tokenizer_phase2"}),
    "tokenizer": ("sweettok.io.model_dataset.ModelDataset", "tokenizer_phase2",
                  {"reconstruction", "image_finetune", "lm", "semantics", "evaluation"}),
    "reconstruction_metrics": ("pandas.CSVDataset", "reconstruction", {"evaluation"}),
    "token_ids": ("pandas.ParquetDataset", "lm", {"semantics"}),
    "token_lm": ("sweettok.io.model_dataset.ModelDataset", "lm", set()),
    "lm_metrics": ("json.JSONDataset", "lm", {"evaluation"}),
    "generated_ids": ("pandas.ParquetDataset", "lm", {"evaluation"}),
    "fewshot": ("pandas.CSVDataset", "semantics", {"evaluation"}),
    "language_codebook": ("sweettok.io.codebook_dataset.LanguageCodebookDataset", "codebook", {"tokenizer_phase1"}),
}


def test_handoffs_are_catalog_datasets_between_pipelines():
    catalog = OmegaConfigLoader(str(ROOT / "conf"), base_env="base", default_run_env="local")["catalog"]
    pipelines = register_pipelines()
    names = [n for n in pipelines if n not in ("__default__", "tokenizer")]
    for dataset, (kind, writer, readers) in HANDOFFS.items():
        assert catalog[dataset]["type"] == kind, dataset
        assert [n for n in names if dataset in pipelines[n].all_outputs()] == [writer], dataset
        assert {n for n in names if dataset in pipelines[n].inputs()} == readers, dataset
    # no pipeline takes a path to another pipeline's files through its parameters any more
    for name in names:
        for node in pipelines[name].nodes:
            assert not {"params:patchify", "params:proxy"} & set(node.inputs) or name in ("patchify", "proxy"), \
                (name, node.name, node.inputs)
    # between the fine-grained pipelines, every free input is a persisted catalog entry
    full = pipelines["__default__"]
    # (`parameters`, all of them, is read by the evaluation report to print them)
    free = {d for d in full.inputs() if not d.startswith("params:") and d != "parameters"}
    assert free == set(), free
    internal = {d for n in names for d in pipelines[n].inputs() if not d.startswith("params:") and d != "parameters"}
    assert internal <= set(catalog), internal - set(catalog)
