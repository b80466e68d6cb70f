"""Fill in the middle (FIM; Bavarian et al. 2022, "Efficient Training of Language Models to Fill in the
Middle"): the pieces that training, evaluation and generation share.

- `sentinels`: which tokens mark prefix, middle and suffix in a tokenizer (the trained backends' own, or
  a pretrained code model's: StarCoder, Qwen2.5-Coder, DeepSeek-Coder, Code Llama, ...);
- `transform`: a text cut at two character positions into prefix, middle and suffix, and the pieces'
  ids arranged prefix-suffix-middle (PSM) or suffix-prefix-middle (SPM), seeded per example;
- `token_bytes`: the bytes each token id stands for, so packed ids turn back into their exact text;
- `windows`: FIM applied where training windows are made from the packed token streams, per
  context-sized window or per document, keeping every window's length.

This package sits below training, tokenization and eval (docs/architecture.md): it reads a
`tokenizers.Tokenizer`, never the project's tokenizer backends.
"""
