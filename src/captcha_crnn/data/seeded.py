"""The `captcha` library, reproducible per seed: it draws its randomness from the `secrets` module, which
cannot be seeded; while drawing, the library is pointed at a seeded `random.Random` with the same three
methods, so a seed gives the same images. Both the synthetic styles and the general recipe draw with it."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator


class SeededSecrets:
    """The subset of the `secrets` module that captcha.image uses, backed by random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq):  # type: ignore[no-untyped-def]
        return self._rng.choice(seq)


@contextlib.contextmanager
def seeded_captcha(rng: random.Random) -> Iterator[None]:
    """While inside, the `captcha` library draws from `rng`."""
    import captcha.image

    original = captcha.image.secrets
    captcha.image.secrets = SeededSecrets(rng)  # type: ignore[assignment]
    try:
        yield
    finally:
        captcha.image.secrets = original
