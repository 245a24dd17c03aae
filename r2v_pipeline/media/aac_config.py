"""How many samples an AAC packet decodes to, read from the stream's
AudioSpecificConfig (ISO 14496-3, 1.6.2.1: the ``esds`` box's decoder config).

FFmpeg learns this only by looking at a packet, and opening an MP4 from its
header alone sees none when its first packet is a picture, as in most files
muxers write. The config says it for plain AAC that declares SBR absent: 1024
samples, or 960 where its ``frameLengthFlag`` is set. Anything else (SBR or parametric stereo, the low-delay
and error-resilient profiles, a program config element, bytes that do not parse)
gives None, and the caller opens the file fully as before; so does a config that
does not say outright that SBR is absent (see below).
"""

from __future__ import annotations

PLAIN_AAC = {1, 2, 3, 4}  # Main, LC, SSR, LTP: GASpecificConfig, 1024 or 960 samples
SYNC_EXTENSION = 0x2B7  # backward-compatible signalling of SBR after the config
SBR = 5


def frame_size(config: bytes | None) -> int | None:
    """Samples per packet of plain AAC as ``config`` describes it; None when it does not
    say, or says anything but plain AAC without SBR."""
    if not config:
        return None
    bits = _Bits(config[:16])  # far more than these fields take
    try:
        kind = bits.read(5)
        if kind == 31:
            kind = 32 + bits.read(6)
        if kind not in PLAIN_AAC:
            return None
        if bits.read(4) == 0xF:  # the sampling rate written out
            bits.read(24)
        if bits.read(4) == 0:  # channels in a program config element: not followed here
            return None
        samples = 960 if bits.read(1) else 1024
        if bits.read(1):  # dependsOnCoreCoder
            bits.read(14)
        if bits.read(1):  # extensionFlag: none defined for these profiles
            return None
        # Only a config that says outright that there is no SBR is trusted: without that,
        # FFmpeg keeps SBR possible and, on finding it in a packet, doubles the rate and
        # the frame (2048). FFmpeg's own encoder writes this extension.
        if bits.left < 17 or bits.read(11) != SYNC_EXTENSION or bits.read(5) != SBR or bits.read(1):
            return None
        return samples
    except EOFError:
        return None


class _Bits:
    """Bits of ``data``, most significant first."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), 8 * len(data)

    def read(self, n: int) -> int:
        if n > self.left:
            raise EOFError
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)
