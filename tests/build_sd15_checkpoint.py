"""Write an SD 1.5 checkpoint with random weights, using ComfyUI's own model classes.

Runs in the ComfyUI server venv (torch, transformers, safetensors), not the test venv:
    python build_sd15_checkpoint.py COMFYUI_DIR CHECKPOINT_OUT VAE_OUT
CHECKPOINT_OUT gets the single-file layout CheckpointLoaderSimple expects; VAE_OUT holds the
same VAE weights without prefix, for VAELoader. Weights are seeded, so output is repeatable.
"""

from __future__ import annotations

import sys

import torch


def init_weights(model: torch.nn.Module) -> None:
    # ComfyUI's ops skip weight init (torch.empty), so give every layer sane values:
    # norms identity, other weights N(0, 1/fan_in), biases zero.
    for m in model.modules():
        weight = getattr(m, "weight", None)
        bias = getattr(m, "bias", None)
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
            continue
        if isinstance(weight, torch.nn.Parameter) and weight.ndim >= 2:
            torch.nn.init.normal_(weight, std=weight[0].numel() ** -0.5)
        if isinstance(bias, torch.nn.Parameter):
            torch.nn.init.zeros_(bias)


def main(comfy_dir: str, ckpt_out: str, vae_out: str) -> None:
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True  # comfy.model_management picks its device at import time
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    # The SD15 entry of comfy/model_detection.py (unet_config_from_diffusers_unet).
    unet = UNetModel(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=320,
        num_res_blocks=[2, 2, 2, 2],
        channel_mult=[1, 2, 4, 4],
        transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
        transformer_depth_middle=1,
        transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        context_dim=768,
        num_heads=8,
        num_head_channels=-1,
        use_spatial_transformer=True,
        use_linear_in_transformer=False,
        legacy=False,
        adm_in_channels=None,
        use_temporal_attention=False,
        use_temporal_resblock=False,
        use_checkpoint=False,
    )
    # The SD VAE ddconfig of comfy/sd.py (VAE.__init__).
    vae = AutoencoderKL(
        embed_dim=4,
        ddconfig={
            "double_z": True,
            "z_channels": 4,
            "resolution": 256,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 128,
            "ch_mult": [1, 2, 4, 4],
            "num_res_blocks": 2,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    )
    init_weights(unet)
    init_weights(vae)
    clip = CLIPTextModel(
        CLIPTextConfig(  # ViT-L/14 text tower, as in SD 1.5
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )

    def half(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
        return {prefix + k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}

    vae_sd = half(vae.state_dict(), "")
    ckpt = {
        **half(unet.state_dict(), "model.diffusion_model."),
        **half(clip.state_dict(), "cond_stage_model.transformer."),  # keys start with text_model.
        **{"first_stage_model." + k: v for k, v in vae_sd.items()},
    }
    save_file(ckpt, ckpt_out)
    save_file(vae_sd, vae_out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
