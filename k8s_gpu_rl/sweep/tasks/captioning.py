"""Image captioning: a ViT-Base encoder and a GPT-2 decoder with cross-attention (the
``vit-gpt2-image-captioning`` layout, 239 M parameters, about 0.95 GB of fp32 weights)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.sweep.tasks import Task, register

GPT2_EOS = 50256
MAX_NEW_TOKENS = 8


@register
class Captioning(Task):
    name = "captioning"
    summary = (
        "ViT-Base/16 encoder (224x224) + GPT-2 (124 M) decoder with cross-attention, greedy "
        f"decoding of {MAX_NEW_TOKENS} tokens (reduced from the usual 16)"
    )
    input_size = (224, 224)
    needs_transformers = True

    def build(self) -> Any:
        from transformers import (
            GPT2Config,
            GPT2LMHeadModel,
            VisionEncoderDecoderModel,
            ViTConfig,
            ViTModel,
        )

        encoder = ViTModel(ViTConfig(), add_pooling_layer=False)
        decoder = GPT2LMHeadModel(GPT2Config(add_cross_attention=True))
        model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
        model.config.decoder_start_token_id = GPT2_EOS
        model.config.pad_token_id = GPT2_EOS
        model.generation_config.decoder_start_token_id = GPT2_EOS
        model.generation_config.pad_token_id = GPT2_EOS
        model.generation_config.eos_token_id = None  # random weights: always decode N tokens
        return model.eval()

    def infer(self, model: Any, batch: Any) -> Any:
        return model.generate(
            pixel_values=batch,
            max_new_tokens=MAX_NEW_TOKENS,
            min_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            num_beams=1,
        )
