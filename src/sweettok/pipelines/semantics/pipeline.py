"""`semantics`: id table + tokenizer -> the words of the test clips' tokens -> few-shot recognition from them."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.semantics.nodes import read_token_words, recognise_few_shot


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(read_token_words, ["token_ids", "tokenizer", "clip_cache", "params:semantics"],
             ["token_words", "class_words", "words_figure"], name="read_token_words"),
        Node(recognise_few_shot, ["token_ids", "tokenizer", "params:semantics"],
             ["fewshot", "fewshot_prompts", "fewshot_figure", "fewshot_summary"], name="recognise_few_shot"),
    ])
