"""`ingest`: dataset root -> video manifest, rejects table, captions."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.ingest.nodes import prepare_dataset, scan


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(prepare_dataset, "params:ingest", "dataset_root", name="prepare_dataset"),
            Node(scan, ["dataset_root", "params:ingest"], ["video_manifest", "video_rejects", "captions"],
                 name="scan_dataset"),
        ]
    )
