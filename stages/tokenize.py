"""tokenize: train tokenizer.backend on a sample of data/prepared's train shards, save models/tokenizer,
pack every shard into data/tokens (shards, index, meta.json), write metrics/tokenize.json."""

from codex_ml import paths
from codex_ml.base_model import base_of
from codex_ml.params import load_params
from codex_ml.runtime import log, run_stage
from codex_ml.tokenization.stage import tokenize


def main() -> None:
    params = load_params(paths.PARAMS)
    m = tokenize(params.tokenizer, paths.PREPARED, paths.TOKENIZER, paths.TOKENS, paths.TOKENIZE_METRICS,
                 base=base_of(params.model), data=params.data)
    log.info("tokenize: %s vocab %d; tokens %s; bytes/token %s; val round trip %s; AutoTokenizer match %s",
             m["backend"], m["vocab_size"], m["tokens"], m["bytes_per_token"], m["round_trip_exact"],
             m["autotokenizer_match"])


if __name__ == "__main__":
    run_stage("tokenize", main)
