"""The bundled LM, as converted by core.assets, loads with plain transformers and knows a dog is an
animal: " animal" is far likelier than " vehicle" after "A dog is a kind of"."""
import pytest
import torch

from core import assets


def continuation_logprob(model, tokenizer, prompt: str, continuation: str) -> float:
    prompt_ids = tokenizer(prompt, return_tensors="pt").input_ids
    cont_ids = tokenizer(continuation, add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([prompt_ids, cont_ids], dim=1)
    with torch.no_grad():
        logprobs = model(ids).logits[0, :-1].log_softmax(-1)
    positions = torch.arange(prompt_ids.shape[1] - 1, ids.shape[1] - 1)
    return logprobs[positions, ids[0, prompt_ids.shape[1]:]].sum().item()


@pytest.mark.integration
def test_bundled_lm_prefers_animal_over_vehicle():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = assets.lm_dir("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert not hasattr(model.config, "quantization_config")   # plain weights, no GGUF quantizer left
    animal = continuation_logprob(model, tokenizer, "A dog is a kind of", " animal")
    vehicle = continuation_logprob(model, tokenizer, "A dog is a kind of", " vehicle")
    print(f"log p(' animal') = {animal:.2f}, log p(' vehicle') = {vehicle:.2f}")
    assert animal > vehicle + 2.0


@pytest.mark.integration
def test_the_lms_presets_prompt_formats_are_the_ones_the_bundled_lms_have():
    """sweeps.LM_FORMATS is a fixed table (a preset names one grid everywhere); here it is checked
    against the bundled LMs themselves: chat exactly where the LM has a chat template."""
    from core.base import ConfigError
    from core.jobs import sweeps
    from core.models import registry

    for lm in registry.LMS:
        try:
            assets.lm_dir(lm)
        except assets.AssetError:
            continue                              # an optional LM not fetched here
        try:
            registry.check_chat_template(lm)
            has_chat = True
        except ConfigError:
            has_chat = False
        assert ((lm, "chat") in sweeps.LM_FORMATS) == has_chat, lm
        assert (lm, "plain") in sweeps.LM_FORMATS
