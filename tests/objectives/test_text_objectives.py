"""Text objectives: the collators' masking statistics (against transformers' own collator), their
reproducibility and bad-input errors, and every loss against a slow, obviously correct loop."""

import math

import pytest
import torch
from transformers import DataCollatorForLanguageModeling

from mmfm.data.collators import (
    DataCollatorForCausalLM,
    DataCollatorForMaskedLM,
    DataCollatorForTokenSubstitution,
)
from mmfm.data.collators.text import select_tokens, word_starts
from mmfm.models import (
    MaskedLMConfig,
    MMFMTextConfig,
    MMFMTextForCausalLM,
    MMFMTextForMaskedLM,
    MMFMTextForPreTraining,
    TokenSubstitutionConfig,
)
from mmfm.models.mmfm_losses import masked_cross_entropy
from mmfm.models.mmfm_text_losses import causal_lm_loss, token_substitution_loss
from mmfm.objectives import get_objective
from tests.model_inputs import objective_config
from tests.objectives import text_examples, text_tokenizer

DRAWS = 60


@pytest.fixture(scope="module")
def tokenizer():
    return text_tokenizer()


@pytest.fixture(scope="module")
def examples(tokenizer):
    return text_examples(tokenizer, count=16, max_length=64)


def _padded(tokenizer, examples):
    padded = tokenizer.pad([{"input_ids": e["input_ids"]} for e in examples], return_tensors="pt")
    return padded["input_ids"], padded["attention_mask"]


def _split(original, corrupted, labels, mask_id):
    """Counts of selected tokens, and of those: [MASK], random other token, unchanged."""
    selected = labels != -100
    masked = selected & (corrupted == mask_id)
    unchanged = selected & (corrupted == original)
    randomised = selected & ~masked & ~unchanged
    return int(selected.sum()), int(masked.sum()), int(randomised.sum()), int(unchanged.sum())


# ----------------------------------------------------------------------------------------------
# Masked LM collator
# ----------------------------------------------------------------------------------------------


def test_mlm_statistics_match_transformers(tokenizer, examples):
    original, attention = _padded(tokenizer, examples)
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    maskable = int((attention.bool() & ~special).sum())
    ours = DataCollatorForMaskedLM(tokenizer, seed=0)
    theirs = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
    totals = {"ours": torch.zeros(4), "theirs": torch.zeros(4)}
    for _ in range(DRAWS):
        batch = ours(examples)
        assert torch.equal(batch["attention_mask"], attention)
        # Specials and padding are never selected; random replacements are never special tokens.
        assert bool((batch["labels"][special] == -100).all())
        assert not bool(torch.isin(batch["input_ids"][~special], torch.tensor([0, 1, 2, 3])).any())
        totals["ours"] += torch.tensor(
            _split(original, batch["input_ids"], batch["labels"], 4), dtype=torch.float
        )
        reference = theirs([{"input_ids": e["input_ids"]} for e in examples])
        totals["theirs"] += torch.tensor(
            _split(original, reference["input_ids"], reference["labels"], 4), dtype=torch.float
        )
    for name, (selected, masked, randomised, unchanged) in totals.items():
        assert selected / (maskable * DRAWS) == pytest.approx(0.15, abs=0.01), name
        assert masked / selected == pytest.approx(0.8, abs=0.02), name
        assert randomised / selected == pytest.approx(0.1, abs=0.015), name
        assert unchanged / selected == pytest.approx(0.1, abs=0.015), name
    ours_rates = totals["ours"][1:] / totals["ours"][0]
    theirs_rates = totals["theirs"][1:] / totals["theirs"][0]
    assert torch.allclose(ours_rates, theirs_rates, atol=0.025)
    assert totals["ours"][0] / totals["theirs"][0] == pytest.approx(1.0, abs=0.08)


def test_mlm_same_seed_same_batch(tokenizer, examples):
    first = DataCollatorForMaskedLM(tokenizer, seed=3)
    second = DataCollatorForMaskedLM(tokenizer, seed=3)
    for _ in range(3):  # the whole sequence of batches repeats, not just the first
        a, b = first(examples), second(examples)
        assert all(torch.equal(a[key], b[key]) for key in a)
    other = DataCollatorForMaskedLM(tokenizer, seed=4)(examples)
    assert not torch.equal(other["labels"], DataCollatorForMaskedLM(tokenizer, seed=3)(examples)["labels"])
    # A generator seeded alike, passed to the collator or to the call, gives the same batch.
    from_seed = DataCollatorForMaskedLM(tokenizer, seed=3)(examples)
    from_generator = DataCollatorForMaskedLM(tokenizer, generator=torch.Generator().manual_seed(3))(examples)
    per_call = DataCollatorForMaskedLM(tokenizer)(examples, generator=torch.Generator().manual_seed(3))
    for key in from_seed:
        assert torch.equal(from_seed[key], from_generator[key])
        assert torch.equal(from_seed[key], per_call[key])


def test_seeded_collator_in_dataloader_workers(tokenizer, examples):
    """Each worker draws from seed + worker id: reproducible across runs, different between workers."""
    from torch.utils.data import DataLoader

    def labels():
        collator = DataCollatorForMaskedLM(tokenizer, seed=5)
        loader = DataLoader([examples[0]] * 4, batch_size=2, num_workers=2, collate_fn=collator)
        return [batch["labels"] for batch in loader]

    first, second = labels(), labels()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])  # same examples, two workers


def _word_groups(word_ids):
    """Token positions of each word (consecutive tokens with one word index)."""
    groups, previous = [], None
    for position, word in enumerate(word_ids):
        if word is None:
            previous = None
            continue
        if word != previous:
            groups.append([])
        groups[-1].append(position)
        previous = word
    return groups


@pytest.mark.parametrize(
    ("model", "give_word_ids"), [("wordpiece", False), ("wordpiece", True), ("bpe", True)]
)
def test_whole_word_masking_masks_all_pieces_together(model, give_word_ids):
    tokenizer = text_tokenizer(model)
    encodings = [tokenizer(e, truncation=True, max_length=64) for e in _texts(12)]
    examples = [
        {"input_ids": enc["input_ids"], **({"word_ids": enc.word_ids()} if give_word_ids else {})}
        for enc in encodings
    ]
    groups = [_word_groups(enc.word_ids()) for enc in encodings]
    assert sum(len(g) > 1 for row in groups for g in row) > 20, "the sample needs multi-piece words"
    collator = DataCollatorForMaskedLM(tokenizer, whole_word_mask=True, seed=0)
    chosen_words = total_words = 0
    for _ in range(20):
        labels = collator(examples)["labels"]
        for row, row_groups in enumerate(groups):
            for group in row_groups:
                picked = [bool(labels[row, p] != -100) for p in group]
                assert all(picked) or not any(picked), (row, group, picked)
                chosen_words += picked[0]
                total_words += 1
    assert chosen_words / total_words == pytest.approx(0.15, abs=0.02)


def _texts(count):
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)[-count:]]


def test_select_tokens_by_words_uses_word_starts():
    maskable = torch.tensor([[False, True, True, True, False, True, True, False]])
    continuation = torch.tensor([[False, False, True, False, False, True, True, False]])
    starts = word_starts(maskable, continuation)
    # Index 5 continues a word but follows a special token, so it starts one.
    assert starts.tolist() == [[False, True, False, True, False, True, False, False]]
    words = [[1, 2], [3], [5, 6]]
    seen = set()
    for seed in range(40):
        selected = select_tokens(maskable, 0.5, torch.Generator().manual_seed(seed), starts)[0]
        assert not bool(selected[~maskable[0]].any())
        for word in words:
            assert len({bool(selected[p]) for p in word}) == 1
        seen.add(tuple(selected.tolist()))
    assert len(seen) == 8  # every combination of the three words occurs


# ----------------------------------------------------------------------------------------------
# Causal LM and token substitution collators
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["right", "left"])
def test_causal_collator_pads_and_ignores_padding(tokenizer, examples, side):
    old_side = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        batch = DataCollatorForCausalLM(tokenizer, pad_to_multiple_of=8)(examples)
    finally:
        tokenizer.padding_side = old_side
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape[1] % 8 == 0
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        real = slice(ids.shape[1] - n, None) if side == "left" else slice(0, n)
        assert ids[row, real].tolist() == example["input_ids"]
        assert mask[row].sum() == n and bool(mask[row, real].all())
    assert torch.equal(labels, ids.masked_fill(mask == 0, -100))


def test_token_substitution_statistics(tokenizer, examples):
    original, attention = _padded(tokenizer, examples)
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    maskable = attention.bool() & ~special
    collator = DataCollatorForTokenSubstitution(tokenizer, seed=0)
    assert collator.substitution_probability == 0.15
    replaced_count = 0
    for _ in range(DRAWS):
        batch = collator(examples)
        labels, ids = batch["substitution_labels"], batch["input_ids"]
        assert torch.equal(labels == -100, ~maskable)
        # 1 exactly where the token changed (never to itself, never to a special token), 0 where kept.
        assert torch.equal(labels == 1, ids != original)
        assert not bool(torch.isin(ids[labels == 1], torch.tensor(tokenizer.all_special_ids)).any())
        replaced_count += int((labels == 1).sum())
    assert replaced_count / (int(maskable.sum()) * DRAWS) == pytest.approx(0.15, abs=0.01)
    again = DataCollatorForTokenSubstitution(tokenizer, seed=0)(examples)
    first = DataCollatorForTokenSubstitution(tokenizer, seed=0)(examples)
    assert all(torch.equal(again[key], first[key]) for key in first)


def test_collators_from_config(tokenizer):
    mlm = MaskedLMConfig(
        mlm_probability=0.3, mask_replace_prob=0.5, random_replace_prob=0.2, whole_word_mask=True
    )
    collator = DataCollatorForMaskedLM.from_config(tokenizer, mlm)
    assert (collator.mlm_probability, collator.mask_replace_prob, collator.random_replace_prob) == (
        0.3,
        0.5,
        0.2,
    )
    assert collator.whole_word_mask is True
    collator = DataCollatorForTokenSubstitution.from_config(tokenizer, TokenSubstitutionConfig(0.2), seed=1)
    assert collator.substitution_probability == 0.2 and collator.seed == 1
    defaults = MaskedLMConfig()
    assert (defaults.mlm_probability, defaults.mask_replace_prob, defaults.random_replace_prob) == (
        0.15,
        0.8,
        0.1,
    )
    assert defaults.whole_word_mask is False
    assert TokenSubstitutionConfig().substitution_probability == 0.15
    assert TokenSubstitutionConfig().whole_word_mask is False


def test_objective_collators_follow_the_model_pretraining_config(tokenizer):
    """The registry builds each text objective's collator from the model's recorded hyperparameters."""
    mlm = MMFMTextForMaskedLM(objective_config("mlm", {"mlm_probability": 0.3}))
    assert mlm.config.pretraining_config == {
        "mlm_probability": 0.3, "mask_replace_prob": 0.8, "random_replace_prob": 0.1, "whole_word_mask": False,
    }  # fmt: skip
    collator = get_objective("mlm").collator(tokenizer, mlm.objective)
    assert isinstance(collator, DataCollatorForMaskedLM) and collator.mlm_probability == 0.3
    rts = MMFMTextForPreTraining(
        objective_config("rts", {"substitution_probability": 0.2, "whole_word_mask": True})
    )
    collator = get_objective("rts").collator(tokenizer, rts.objective)
    assert isinstance(collator, DataCollatorForTokenSubstitution)
    assert (collator.substitution_probability, collator.whole_word_mask) == (0.2, True)
    clm = MMFMTextForCausalLM(objective_config("clm"))
    assert isinstance(get_objective("clm").collator(tokenizer, clm.objective), DataCollatorForCausalLM)
    assert clm.config.pretraining_config == {}


# ----------------------------------------------------------------------------------------------
# Losses against slow references
# ----------------------------------------------------------------------------------------------


def _slow_cross_entropy(scores, target):
    """-log softmax(scores)[target] with Python floats."""
    values = [float(v) for v in scores]
    top = max(values)
    log_total = top + math.log(sum(math.exp(v - top) for v in values))
    return log_total - values[target]


def _mlm_model() -> MMFMTextForMaskedLM:
    torch.manual_seed(0)
    return MMFMTextForMaskedLM(objective_config("mlm")).eval()


def test_masked_lm_logits_are_dense_by_default_and_sparse_on_request(tokenizer, examples):
    model = _mlm_model()
    batch = DataCollatorForMaskedLM(tokenizer, seed=0)(examples[:4])
    with torch.no_grad():
        dense = model(**batch)
        sparse = model(**batch, sparse_prediction=True)
        unlabelled = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    labels = batch["labels"]
    scored = labels != -100
    vocab = model.config.vocab_size
    assert dense.logits.shape == (*labels.shape, vocab)  # (B, L, V), as transformers' masked LMs
    assert unlabelled.logits.shape == (*labels.shape, vocab) and unlabelled.loss is None
    assert sparse.logits.shape == (int(scored.sum()), vocab)
    torch.testing.assert_close(dense.logits, unlabelled.logits)
    torch.testing.assert_close(sparse.logits, dense.logits[scored], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sparse.loss, dense.loss, rtol=1e-5, atol=1e-6)
    # Outputs are transformers-shaped: no objective-named loss fields.
    assert set(dense.keys()) == {"loss", "logits"}
    # The training recipe asks for the sparse logits.
    assert get_objective("mlm").step_kwargs(model.objective, 0.3) == {"sparse_prediction": True}


def test_masked_lm_loss_on_masked_positions_equals_full_logits(tokenizer, examples):
    model = _mlm_model()
    batch = DataCollatorForMaskedLM(tokenizer, seed=0)(examples[:4])
    with torch.no_grad():
        masked_only = model(**batch, sparse_prediction=True)
        dense = model(**batch)
        full = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    assert full.shape == (*labels.shape, model.config.vocab_size)
    assert masked_only.logits.shape == (int((labels != -100).sum()), model.config.vocab_size)
    losses, rows = [], []
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if labels[b, t] != -100:
                losses.append(_slow_cross_entropy(full[b, t], int(labels[b, t])))
                rows.append(full[b, t])
    torch.testing.assert_close(masked_only.logits, torch.stack(rows), rtol=1e-5, atol=1e-5)
    assert float(masked_only.loss) == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    assert float(dense.loss) == pytest.approx(sum(losses) / len(losses), rel=1e-5)


@pytest.mark.parametrize("sparse_prediction", [False, True])
def test_masked_lm_num_items_in_batch_divides_the_summed_loss(tokenizer, examples, sparse_prediction):
    model = _mlm_model()
    batch = DataCollatorForMaskedLM(tokenizer, seed=0)(examples[:4])
    with torch.no_grad():
        full = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        mean = model(**batch, sparse_prediction=sparse_prediction).loss
        summed = model(**batch, sparse_prediction=sparse_prediction, num_items_in_batch=100).loss
        as_tensor = model(
            **batch, sparse_prediction=sparse_prediction, num_items_in_batch=torch.tensor(100)
        ).loss
    labels = batch["labels"]
    total = sum(
        _slow_cross_entropy(full[b, t], int(labels[b, t])) for b, t in (labels != -100).nonzero().tolist()
    )
    count = int((labels != -100).sum())
    assert float(summed) == pytest.approx(total / 100, rel=1e-5)
    assert float(as_tensor) == pytest.approx(total / 100, rel=1e-5)
    assert float(summed) == pytest.approx(float(mean) * count / 100, rel=1e-5)


def test_causal_lm_loss_equals_loop():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=gen)
    labels = torch.randint(0, 11, (3, 6), generator=gen)
    labels[0, 4:] = -100
    labels[2, :2] = -100
    losses = []
    for b in range(3):
        for t in range(5):  # position t predicts token t + 1
            if labels[b, t + 1] != -100:
                losses.append(_slow_cross_entropy(logits[b, t], int(labels[b, t + 1])))
    assert float(causal_lm_loss(logits, labels)) == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert float(causal_lm_loss(logits, torch.full_like(labels, -100))) == 0.0


def _clm_batch(tokenizer, examples, count: int = 4) -> dict:
    return DataCollatorForCausalLM(tokenizer)(examples[:count])


def test_causal_lm_model_loss_equals_loop_and_shift_labels_agree(tokenizer, examples):
    torch.manual_seed(0)
    model = MMFMTextForCausalLM(objective_config("clm")).eval()
    batch = _clm_batch(tokenizer, examples)
    labels = batch["labels"]
    shift_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)  # labels shifted left
    with torch.no_grad():
        from_labels = model(**batch)
        from_shifted = model(batch["input_ids"], batch["attention_mask"], shift_labels=shift_labels)
        summed = model(**batch, num_items_in_batch=50)
    logits = from_labels.logits
    assert logits.shape == (*labels.shape, model.config.vocab_size)
    losses = []
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):  # position t predicts token t + 1
            if labels[b, t + 1] != -100:
                losses.append(_slow_cross_entropy(logits[b, t], int(labels[b, t + 1])))
    assert float(from_labels.loss) == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    torch.testing.assert_close(from_shifted.loss, from_labels.loss)
    torch.testing.assert_close(from_shifted.logits, from_labels.logits)
    assert float(summed.loss) == pytest.approx(sum(losses) / 50, rel=1e-5)
    # shift_labels are used as given: every position is scored, the last one included.
    last = shift_labels.clone()
    last[0, -1] = int(batch["input_ids"][0, 0])
    with torch.no_grad():
        with_last = model(batch["input_ids"], batch["attention_mask"], shift_labels=last).loss
    expected = (sum(losses) + _slow_cross_entropy(logits[0, -1], int(last[0, -1]))) / (len(losses) + 1)
    assert float(with_last) == pytest.approx(expected, rel=1e-5)


def test_causal_lm_loss_function_with_shift_labels_and_num_items():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=gen)
    labels = torch.randint(0, 11, (3, 6), generator=gen)
    labels[0, 4:] = -100
    shift_labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    torch.testing.assert_close(
        causal_lm_loss(logits, shift_labels=shift_labels), causal_lm_loss(logits, labels)
    )
    summed = sum(
        _slow_cross_entropy(logits[b, t], int(labels[b, t + 1]))
        for b in range(3) for t in range(5) if labels[b, t + 1] != -100
    )  # fmt: skip
    assert float(causal_lm_loss(logits, labels, num_items_in_batch=40)) == pytest.approx(
        summed / 40, rel=1e-6
    )


def test_token_substitution_loss_equals_loop():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 7, generator=gen) * 3
    labels = torch.randint(0, 2, (3, 7), generator=gen)
    labels[:, 0] = -100
    labels[1, 5:] = -100
    losses = []
    for b in range(3):
        for t in range(7):
            y = int(labels[b, t])
            if y != -100:
                p = 1.0 / (1.0 + math.exp(-float(logits[b, t])))
                losses.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    assert float(token_substitution_loss(logits, labels)) == pytest.approx(
        sum(losses) / len(losses), rel=1e-6
    )


def test_losses_without_scored_positions_are_zero_with_gradient():
    logits = torch.randn(4, 9, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    scores = torch.randn(2, 5, requires_grad=True)
    loss = token_substitution_loss(scores, torch.full((2, 5), -100))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad is not None


def test_pretraining_loss_is_the_sum_of_named_losses(tokenizer, examples):
    torch.manual_seed(0)
    model = MMFMTextForPreTraining(objective_config("rts")).eval()
    mlm = DataCollatorForMaskedLM(tokenizer, seed=0)(examples[:4])
    substitution = DataCollatorForTokenSubstitution(tokenizer, seed=1)(examples[:4])
    with torch.no_grad():
        both = model(
            mlm["input_ids"], mlm["attention_mask"], mlm["labels"], substitution["substitution_labels"]
        )
        full = model(mlm["input_ids"], mlm["attention_mask"])
    assert float(both.loss) == pytest.approx(float(both.mlm_loss + both.substitution_loss), rel=1e-6)
    labels = mlm["labels"]
    expected_mlm = masked_cross_entropy(full.mlm_logits[labels != -100], labels[labels != -100])
    assert float(both.mlm_loss) == pytest.approx(float(expected_mlm), rel=1e-5)
    expected_rts = token_substitution_loss(full.substitution_logits, substitution["substitution_labels"])
    assert float(both.substitution_loss) == pytest.approx(float(expected_rts), rel=1e-5)
    with torch.no_grad():
        rts_only = model(**substitution)
    assert rts_only.mlm_logits is None and rts_only.mlm_loss is None
    assert float(rts_only.loss) == pytest.approx(float(rts_only.substitution_loss))
    # The masked-LM head's logits are (B, L, V) by default, (N, V) at the scored positions on request.
    assert both.mlm_logits.shape == (*labels.shape, model.config.vocab_size)
    with torch.no_grad():
        sparse = model(mlm["input_ids"], mlm["attention_mask"], mlm["labels"], sparse_prediction=True)
    torch.testing.assert_close(sparse.mlm_logits, full.mlm_logits[labels != -100], rtol=1e-5, atol=1e-5)
    assert float(sparse.mlm_loss) == pytest.approx(float(expected_mlm), rel=1e-5)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, 1.5, -0.1, True, "0.15"])
@pytest.mark.parametrize(
    ("collator", "field"),
    [
        (DataCollatorForMaskedLM, "mlm_probability"),
        (DataCollatorForTokenSubstitution, "substitution_probability"),
    ],
)
def test_probability_outside_open_interval(tokenizer, collator, field, value):
    with pytest.raises(ValueError, match=f"{field}.*strictly between 0 and 1"):
        collator(tokenizer, **{field: value})


def test_bad_replacement_split(tokenizer):
    with pytest.raises(ValueError, match="mask_replace_prob.*random_replace_prob.*exceed 1"):
        DataCollatorForMaskedLM(tokenizer, mask_replace_prob=0.9, random_replace_prob=0.2)
    with pytest.raises(ValueError, match="random_replace_prob.*in \\[0, 1\\]"):
        DataCollatorForMaskedLM(tokenizer, random_replace_prob=-0.1)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, True])
@pytest.mark.parametrize(
    ("objective", "field"), [("mlm", "mlm_probability"), ("rts", "substitution_probability")]
)
def test_config_probability_outside_open_interval(objective, field, value):
    model_class = get_objective(objective).model_class
    with pytest.raises(ValueError, match=rf"{model_class.__name__}: config\.pretraining_config is invalid: .*"
                                         rf"{field} must be (strictly between 0 and 1|a float)"):  # fmt: skip
        model_class(objective_config(objective, {field: value}))


def test_objective_config_errors():
    with pytest.raises(
        ValueError, match=r"MaskedLMConfig\.mask_replace_prob \+ random_replace_prob must not exceed 1"
    ):
        MMFMTextForMaskedLM(objective_config("mlm", {"mask_replace_prob": 0.9, "random_replace_prob": 0.2}))
    with pytest.raises(ValueError, match=r"Unknown MaskedLMConfig field\(s\) \['substitution_probability'\]"):
        MMFMTextForMaskedLM(objective_config("mlm", {"substitution_probability": 0.1}))
    with pytest.raises(ValueError, match=r"Unknown CausalLMConfig field\(s\) \['mlm_probability'\]"):
        MMFMTextForCausalLM(objective_config("clm", {"mlm_probability": 0.15}))


def test_encoder_requirements_and_foreign_configs_are_refused():
    with pytest.raises(
        ValueError, match=r"MMFMTextForMaskedLM \(mlm\) needs config\.is_causal=False, got True"
    ):
        MMFMTextForMaskedLM(MMFMTextConfig.from_preset("tiny", is_causal=True))
    with pytest.raises(ValueError, match=r"MMFMTextForPreTraining \(rts\) needs config\.is_causal=False"):
        MMFMTextForPreTraining(MMFMTextConfig.from_preset("tiny", is_causal=True))
    with pytest.raises(
        ValueError, match=r"MMFMTextForCausalLM \(clm\) needs config\.is_causal=True, got False"
    ):
        MMFMTextForCausalLM(MMFMTextConfig.from_preset("tiny"))
    with pytest.raises(
        ValueError, match=r"MMFMTextForPreTraining trains the 'rts' objective.*made for 'mlm'"
    ):
        MMFMTextForPreTraining(MMFMTextForMaskedLM(objective_config("mlm")).config)


@pytest.mark.parametrize("collator", [DataCollatorForMaskedLM, DataCollatorForTokenSubstitution])
def test_example_without_maskable_token_is_too_short(tokenizer, examples, collator):
    only_specials = {"input_ids": [tokenizer.cls_token_id, tokenizer.sep_token_id]}
    with pytest.raises(ValueError, match=r"Example\(s\) \[1\] are too short to (mask|substitute) anything"):
        collator(tokenizer, seed=0)([examples[0], only_specials])
    with pytest.raises(ValueError, match=r"Example\(s\) \[0\] are too short"):
        collator(tokenizer, seed=0)([{"input_ids": []}, examples[0]])


@pytest.mark.parametrize(
    "collator", [DataCollatorForMaskedLM, DataCollatorForTokenSubstitution, DataCollatorForCausalLM]
)
def test_all_padding_batch(tokenizer, examples, collator):
    padding_only = [
        {"input_ids": examples[0]["input_ids"], "attention_mask": [0] * len(examples[0]["input_ids"])},
        {"input_ids": []},
    ]
    with pytest.raises(ValueError, match="All-padding batch"):
        collator(tokenizer)(padding_only)
    with pytest.raises(ValueError, match="non-empty list"):
        collator(tokenizer)([])


def test_causal_example_too_short(tokenizer, examples):
    with pytest.raises(ValueError, match=r"Example\(s\) \[1\] are too short to predict"):
        DataCollatorForCausalLM(tokenizer)([examples[0], {"input_ids": [5]}])


def test_tokenizer_without_mask_token(tokenizer):
    from transformers import PreTrainedTokenizerFast

    no_mask = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend_tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]"
    )
    with pytest.raises(ValueError, match="no mask token"):
        DataCollatorForMaskedLM(no_mask)
    DataCollatorForTokenSubstitution(no_mask)  # needs none


def test_malformed_examples(tokenizer, examples):
    collator = DataCollatorForMaskedLM(tokenizer, seed=0)
    ids = examples[0]["input_ids"]
    with pytest.raises(ValueError, match="attention_mask` has length"):
        collator([{"input_ids": ids, "attention_mask": [1] * (len(ids) - 1)}])
    with pytest.raises(ValueError, match="input_ids` must lie in"):
        collator([{"input_ids": ids + [len(tokenizer)]}])
    with pytest.raises(ValueError, match="has no `input_ids`"):
        collator([{"ids": ids}])
    with pytest.raises(ValueError, match="either `generator` or `seed`"):
        DataCollatorForMaskedLM(tokenizer, seed=0, generator=torch.Generator())
