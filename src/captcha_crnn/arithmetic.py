"""Arithmetic captchas ("3+8=?", "12×4="): drawing the expressions and solving what a model reads.

Torch-free and light (the standard library only), because `predict`, `evaluate` and `serve` solve
readings with it (`--solve arithmetic`) and must not pull in training code. `solve` is a small tokenizer
and precedence parser, never `eval`: a reading is untrusted text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from captcha_crnn.errors import CaptchaCrnnError, one_line

# The glyphs an expression is drawn with: each operator in its common variants.
GLYPHS: dict[str, tuple[str, ...]] = {"+": ("+",), "-": ("-",), "*": ("x", "*", "×"), "/": ("÷", "/")}
ENDINGS = ("", "=", "=?", "?")  # what follows the expression
CHARSET = "0123456789+-x*×÷/=?"  # every character an expression is drawn with
LENGTH = (3, 7)  # "3+8" to "99×99=?"
OPERAND_MAX = 99
SOLVERS = ("arithmetic",)  # the values of --solve

# What `solve` reads as each operator: the drawn glyphs, plus "X" (an upper-case reading of x, e.g. by a
# case-folding model) and "−" (U+2212, the typographic minus).
_OPERATORS = {glyph: op for op, glyphs in GLYPHS.items() for glyph in glyphs} | {"X": "*", "−": "-"}
# Every whole division of operands 0-99, drawn uniformly: picking the divisor first would make most of
# them 0÷b or b÷b (a divisor over 49 has no other multiple under 100).
_DIVISIONS = [(a, b) for b in range(1, OPERAND_MAX + 1) for a in range(0, OPERAND_MAX + 1, b)]
_TOKEN = re.compile(r"\s*(?:([0-9]+)|(.))", re.DOTALL)


class UnsolvableError(CaptchaCrnnError):
    """Text that is not an arithmetic expression with a whole-number value."""


def expression(rng: random.Random) -> str:
    """A random expression as drawn, e.g. "12×4=" or "3+8=?": operands 0-99, one operator.

    Subtraction never goes below zero and division always comes out whole: arithmetic captchas ask for
    an answer typed into a box, and the ones in the wild keep it a plain non-negative number. (`solve`
    still reads "3-8" as -5: a misreading may go negative.)
    """
    op = rng.choice(tuple(GLYPHS))
    if op == "/":
        a, b = rng.choice(_DIVISIONS)
    else:
        a, b = rng.randint(0, OPERAND_MAX), rng.randint(0, OPERAND_MAX)
        if op == "-" and a < b:
            a, b = b, a
    return f"{a}{rng.choice(GLYPHS[op])}{b}{rng.choice(ENDINGS)}"


def solve(text: str) -> int:
    """The value of an expression such as "12×4=", "3 + 8 = ?" or "2+3*4" (× and ÷ before + and -).

    Every operator glyph variant is read, spaces anywhere between tokens, and a trailing "=" and/or "?".
    Division must come out whole. Anything else raises UnsolvableError, e.g. "cannot solve '3+': ...".
    """
    numbers, ops = _tokens(text)
    # Two precedence levels, each left to right: fold × and ÷ into their left operand, then sum.
    terms, signs = [numbers[0]], []
    for glyph, number in zip(ops, numbers[1:]):
        op = _OPERATORS[glyph]
        if op in "+-":
            terms.append(number)
            signs.append(op)
        elif op == "*":
            terms[-1] *= number
        elif number == 0:
            raise _unsolvable(text, "division by zero")
        elif terms[-1] % number:
            raise _unsolvable(text, f"{terms[-1]} / {number} is not a whole number")
        else:
            terms[-1] //= number
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        total = total + term if sign == "+" else total - term
    return total


def _tokens(text: str) -> tuple[list[int], list[str]]:
    """Numbers and the operator glyphs between them; a trailing "=" and "?" are dropped first."""
    body = text.rstrip()
    body = body[:-1].rstrip() if body.endswith("?") else body
    body = body[:-1] if body.endswith("=") else body
    numbers: list[int] = []
    ops: list[str] = []
    for match in _TOKEN.finditer(body):
        digits, other = match.groups()
        if digits is not None:
            if len(numbers) > len(ops):
                raise _unsolvable(text, f"an operator is missing before {digits!r}")
            if len(digits) > 9:
                raise _unsolvable(text, f"{digits[:12]}... is too long a number")
            numbers.append(int(digits))
        elif other is not None and not other.isspace():
            if other not in _OPERATORS:
                raise _unsolvable(text, f"{other!r} is neither a digit nor an operator")
            if len(numbers) == len(ops):
                where = f"after {ops[-1]!r}" if ops else "at the start"
                raise _unsolvable(text, f"a number is missing {where}")
            ops.append(other)
    if not ops:
        raise _unsolvable(text, "no operator" if numbers else "no expression")
    if len(numbers) == len(ops):
        raise _unsolvable(text, f"a number is missing after {ops[-1]!r}")
    return numbers, ops


def _unsolvable(text: str, why: str) -> UnsolvableError:
    return UnsolvableError(f"cannot solve '{one_line(text, 40)}': {why}")


@dataclass(frozen=True)
class Answer:
    """A reading's value, or why it has none: what predict, evaluate and the service report."""

    value: int | None
    error: str | None = None

    def to_dict(self) -> dict[str, int | str | None]:
        """{"answer": 48}, or {"answer": None, "answer_error": "cannot solve ..."}."""
        return {"answer": self.value} if self.error is None else {"answer": None, "answer_error": self.error}


def answer(text: str, solver: str = "arithmetic") -> Answer:
    """`text` solved by `solver` (one of SOLVERS), never raising for text that does not parse."""
    check_solver(solver)
    try:
        return Answer(solve(text))
    except UnsolvableError as exc:
        return Answer(None, str(exc))


def check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise CaptchaCrnnError(f"unknown solver {solver!r}; solvers: {', '.join(SOLVERS)}")
