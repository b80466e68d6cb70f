"""codex: Qwen3 (Llama with RMSNorm on each head's queries and keys) plus value embeddings; a causal LM
class of this package that saves and loads as a Hugging Face folder.

Value embeddings (from the modded-nanoGPT speedrun record): extra token-embedding tables whose rows
are added to the attention values of the first and last layers, `v = v_proj(h) + g * table[id]`, with
one learned scalar gate `g` per layer (0.5 at the start). They give attention a path from each token's
identity straight to what it contributes, which a 4-layer, 128-wide model otherwise has to carry in
its residual stream. With k tables and L layers, table i feeds layer i and layer L - k + i. They cost
a lookup and an add per layer, no matmul; what they buy is measured in docs/speedrun.md.

Two more modded-nanoGPT changes, off by default: `unet` (the first half of the layers' outputs are
added, through learned weights, to the inputs of the second half in reverse order) and
`logit_softcap` (logits = cap * tanh(logits / cap); models/head.py's block-wise loss then stands
aside, as it does for any capped model).

Measured on the default corpus (docs/speedrun.md rows 40-46): two tables lowered val bits/byte by
0.08-0.10 at 600 steps, but at the pipeline's 1,200 steps they tied with plain Llama on val and lost
on test, winning only on files with near-copies in train; softcap 15 lost by 0.03.

The classes register with transformers' Auto classes (`model_type: codex`) on import of this module,
which the model loaders (build_model, eval's load_model, LoRA export) do, so `AutoModelForCausalLM.from_pretrained(folder)` loads a saved model without
`trust_remote_code`. With `value_embeds: 0` the model is Qwen3ForCausalLM, weight for weight: the same
parameters, the same initial values from the same seed, the same logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.qwen3 import modeling_qwen3 as q3


class CodexConfig(Qwen3Config):
    model_type = "codex"

    def __init__(self, value_embeds: int = 0, unet: bool = False, logit_softcap: float = 0.0,
                 **kwargs: Any) -> None:
        self.value_embeds = value_embeds
        self.unet = unet
        self.logit_softcap = logit_softcap
        super().__init__(**kwargs)
        if not 0 <= value_embeds <= self.num_hidden_layers // 2:
            raise ValueError(f"value_embeds: expected 0 to num_hidden_layers // 2 "
                             f"({self.num_hidden_layers // 2}), got {value_embeds}")

    def value_table(self, layer: int) -> int | None:
        """The value-embedding table that layer `layer` adds to its values, or None."""
        k, n = self.value_embeds, self.num_hidden_layers
        if layer < k:
            return layer
        if layer >= n - k:
            return layer - (n - k)
        return None


class CodexAttention(q3.Qwen3Attention):
    def __init__(self, config: CodexConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self.value_table = config.value_table(layer_idx)
        if self.value_table is not None:
            self.value_gate = nn.Parameter(torch.full((), 0.5))

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                attention_mask: torch.Tensor | None, cache: Any = None,
                **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Qwen3Attention.forward (transformers 5.24) with the value embedding added to v_proj's output.
        value_embeds = kwargs.pop("value_embeds", None)
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
        key_states = self.k_norm(self.k_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
        values = self.v_proj(hidden_states)
        if self.value_table is not None:
            if value_embeds is None:
                raise ValueError("codex: a layer with a value embedding was called without value_embeds")
            values = values + self.value_gate * value_embeds[self.value_table]
        value_states = values.view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = q3.apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx, kwargs=kwargs)
        attention_interface = q3.ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, q3.eager_attention_forward)
        attn_output, attn_weights = attention_interface(
            self, query_states, key_states, value_states, attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout, scaling=self.scaling,
            sliding_window=self.sliding_window, **kwargs)
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class CodexDecoderLayer(q3.Qwen3DecoderLayer):
    def __init__(self, config: CodexConfig, layer_idx: int) -> None:
        # Qwen3DecoderLayer's own __init__ with codex's attention; built once, so the weights draw the
        # same random numbers as Qwen3's.
        super(q3.Qwen3DecoderLayer, self).__init__()
        self.hidden_size = config.hidden_size
        self.self_attn = CodexAttention(config, layer_idx)
        self.mlp = q3.Qwen3MLP(config)
        self.input_layernorm = q3.Qwen3RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = q3.Qwen3RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class CodexModel(q3.Qwen3Model):
    config_class = CodexConfig

    def __init__(self, config: CodexConfig) -> None:
        q3.Qwen3PreTrainedModel.__init__(self, config)  # Qwen3Model's own, with codex's layers
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([CodexDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = q3.Qwen3RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = q3.Qwen3RotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.has_sliding_layers = "sliding_attention" in (config.layer_types or [])
        width = int(config.num_key_value_heads or 0) * int(config.head_dim or 0)
        self.value_embeds = nn.ModuleList(
            [nn.Embedding(config.vocab_size, width) for _ in range(config.value_embeds)])
        if config.unet:
            self.skip_weights = nn.Parameter(torch.ones(config.num_hidden_layers // 2))
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: Any = None,
                position_ids: torch.LongTensor | None = None, cache: Any = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPast:
        # Qwen3Model.forward (transformers 5.24) that also looks up the value embeddings.
        cache = kwargs.pop("past_key_values", cache)
        kwargs.pop("output_hidden_states", None)
        kwargs.pop("output_attentions", None)
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if self.value_embeds and input_ids is None:
            raise ValueError("codex: value embeddings need input_ids, not inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache is None:
            use_cache = self.config.use_cache
        if use_cache and cache is None:
            cache = q3.DynamicCache(config=self.config)
        if position_ids is None:
            past = cache.get_seq_length() if cache is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)  # type: ignore[assignment]
                            + past).unsqueeze(0)
        masks = attention_mask
        if not isinstance(masks, dict):  # generate may have built them already
            mask_kwargs = dict(config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                               cache=cache, position_ids=position_ids)
            masks = {"full_attention": q3.create_causal_mask(**mask_kwargs)}
            if self.has_sliding_layers:
                masks["sliding_attention"] = q3.create_sliding_window_causal_mask(**mask_kwargs)
        value_embeds = [table(input_ids) for table in self.value_embeds]
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        n, half = len(self.layers), len(self.layers) // 2
        layer_types = self.config.layer_types or ["full_attention"] * n
        skips: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            if self.config.unet and i >= n - half:
                hidden_states = hidden_states + self.skip_weights[i - (n - half)] * skips.pop()
            hidden_states = layer(hidden_states, attention_mask=masks[layer_types[i]],
                                  position_embeddings=position_embeddings, position_ids=position_ids,
                                  cache=cache, use_cache=use_cache, value_embeds=value_embeds, **kwargs)
            if self.config.unet and i < half:
                skips.append(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states),
                                       cache=cache if use_cache else None)


class CodexForCausalLM(q3.Qwen3ForCausalLM):
    config_class = CodexConfig

    def __init__(self, config: CodexConfig) -> None:
        q3.Qwen3PreTrainedModel.__init__(self, config)  # Qwen3ForCausalLM's own, with codex's model
        self.model = CodexModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: Any = None,
                position_ids: torch.LongTensor | None = None, cache: Any = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                **kwargs: Any) -> Any:
        cap = self.config.logit_softcap
        if not cap:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   cache=cache, inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                                   logits_to_keep=logits_to_keep, **kwargs)
        from transformers.modeling_outputs import CausalLMOutputWithPast
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        h = out.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep:
            h = h[:, -logits_to_keep:]
        logits = self.lm_head(h)
        logits = cap * torch.tanh(logits / cap)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)


AutoConfig.register(CodexConfig.model_type, CodexConfig, exist_ok=True)
AutoModelForCausalLM.register(CodexConfig, CodexForCausalLM, exist_ok=True)
