"""`codebook`: build the MLC prior from the training captions.

captions -> codebook_training_captions (memory) -> codebook_words (CSV) -> language_codebook (directory)
"""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.codebook.nodes import build_codebook_prior, build_vocabulary, select_captions


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(select_captions, ["captions", "params:codebook"], "codebook_training_captions",
                 name="select_codebook_captions"),
            Node(build_vocabulary, ["codebook_training_captions", "params:codebook"], "codebook_words",
                 name="build_vocabulary"),
            Node(build_codebook_prior, ["codebook_words", "codebook_training_captions", "params:codebook"],
                 "language_codebook", name="build_codebook_prior"),
        ]
    )
