"""The system prompts are built from their parts: rules numbered in order, the decision rule
numbered after the variant's last rule, and the no-context variant never pointing at passages."""

from __future__ import annotations

import re

import pytest

from rag.generate import prompts
from rag.generate.base import AUDIENCES
from rag.generate.prompts import system_prompt


def rule_numbers(prompt: str) -> list[int]:
    return [int(number) for number in re.findall(r"^(\d+)\. ", prompt, re.MULTILINE)]


@pytest.mark.parametrize("with_passages", [True, False])
@pytest.mark.parametrize("audience", AUDIENCES)
def test_the_decision_rule_follows_the_last_rule(audience: str, with_passages: bool) -> None:
    prompt = system_prompt(audience=audience, want_decision=True, with_passages=with_passages)

    numbers = rule_numbers(prompt)
    assert numbers == list(range(1, len(numbers) + 1))
    assert f"\n{numbers[-1]}. This question also wants a decision." in prompt
    without = system_prompt(audience=audience, want_decision=False, with_passages=with_passages)
    assert rule_numbers(without) == numbers[:-1]


@pytest.mark.parametrize("audience", AUDIENCES)
def test_the_no_context_prompt_never_mentions_passages(audience: str) -> None:
    prompt = system_prompt(audience=audience, want_decision=True, with_passages=False)

    assert "passage" not in prompt
    assert "yes or no when the evidence supports that answer" in prompt
    assert "as rules 2 to 4 say" in prompt


def test_a_rule_added_to_a_prompt_moves_the_decision_rule_after_it(monkeypatch) -> None:
    # Editing a prompt's rules must not leave two rules with one number.
    monkeypatch.setattr(
        prompts,
        "NO_CONTEXT_SYSTEM_PROMPT",
        prompts.NO_CONTEXT_SYSTEM_PROMPT.replace(
            "5. If you do not know", "5. Keep the answer short.\n6. If you do not know"
        ),
    )
    monkeypatch.setattr(
        prompts,
        "SYSTEM_PROMPT",
        prompts.SYSTEM_PROMPT.replace(
            "7. If the passages", "7. Keep the answer short.\n8. If the passages"
        ),
    )

    for with_passages, rules in ((False, 7), (True, 9)):
        prompt = system_prompt(
            audience="clinician", want_decision=True, with_passages=with_passages
        )
        assert rule_numbers(prompt) == list(range(1, rules + 1))
        assert f"\n{rules}. This question also wants a decision." in prompt
