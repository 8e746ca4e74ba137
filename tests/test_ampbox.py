"""
Tests for L{ismon.wire.ampbox}: the stdlib AMP box codec, held to the bytes that
Twisted's own AMP implementation writes and reads.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.protocols import amp
from twisted.test.iosim import FakeTransport
from twisted.trial.unittest import SynchronousTestCase

from ismon.wire.ampbox import MAX_KEY_LENGTH, MAX_VALUE_LENGTH, BoxReader, MalformedBox, encode_box

keys = st.binary(min_size=1, max_size=MAX_KEY_LENGTH)
values = st.binary(max_size=2048)
boxes = st.dictionaries(keys, values, max_size=8)
derandomized = settings(derandomize=True, max_examples=300, deadline=None)


class _Collector:
    """An IBoxReceiver that keeps what Twisted's parser delivers."""

    def __init__(self) -> None:
        self.boxes: list[dict[bytes, bytes]] = []

    def startReceivingBoxes(self, sender: Any) -> None:
        pass

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        self.boxes.append(dict(box))

    def stopReceivingBoxes(self, reason: Any) -> None:
        pass


def twisted_parse(data: bytes, chunk: int) -> list[dict[bytes, bytes]]:
    collector = _Collector()
    protocol = amp.BinaryBoxProtocol(collector)
    protocol.makeConnection(FakeTransport(protocol, isServer=False))
    for start in range(0, len(data), chunk):
        protocol.dataReceived(data[start : start + chunk])
    return collector.boxes


def feed(reader: BoxReader, data: bytes, chunk: int) -> list[dict[bytes, bytes]]:
    found: list[dict[bytes, bytes]] = []
    for start in range(0, len(data), chunk):
        found += reader.feed(data[start : start + chunk])
    return found


class AgainstTwistedTests(SynchronousTestCase):
    @derandomized
    @given(boxes)
    def test_encoding_is_twisteds(self, box: dict[bytes, bytes]) -> None:
        self.assertEqual(encode_box(box), amp.AmpBox(box).serialize())

    @derandomized
    @given(st.lists(boxes, min_size=1, max_size=4), st.integers(1, 300))
    def test_reads_what_twisted_writes(self, sent: list[dict[bytes, bytes]], chunk: int) -> None:
        wire = b"".join(amp.AmpBox(box).serialize() for box in sent)
        reader = BoxReader()
        self.assertEqual(feed(reader, wire, chunk), sent)
        self.assertEqual(reader.pending, 0)

    @derandomized
    @given(st.lists(boxes, min_size=1, max_size=4), st.integers(1, 300))
    def test_twisted_reads_what_we_write(self, sent: list[dict[bytes, bytes]], chunk: int) -> None:
        wire = b"".join(encode_box(box) for box in sent)
        self.assertEqual(twisted_parse(wire, chunk), sent)

    def test_full_size_value(self) -> None:
        box = {b"status": b"x" * MAX_VALUE_LENGTH, b"_answer": b"1"}
        wire = encode_box(box)
        self.assertEqual(wire, amp.AmpBox(box).serialize())
        self.assertEqual(BoxReader().feed(wire), [box])


class LimitTests(SynchronousTestCase):
    def test_encode_refuses_what_amp_cannot_carry(self) -> None:
        for box in (
            {b"": b"x"},
            {b"k" * (MAX_KEY_LENGTH + 1): b"x"},
            {b"k": b"v" * (MAX_VALUE_LENGTH + 1)},
            {"text": b"x"},
            {b"k": "text"},
        ):
            with self.assertRaises(MalformedBox):
                encode_box(box)  # type: ignore[arg-type]

    def test_key_too_long_refused_at_once(self) -> None:
        # A key length over 255 is refused from its two length bytes alone,
        # without waiting for (or buffering) the key.
        reader = BoxReader()
        with self.assertRaises(MalformedBox):
            reader.feed((MAX_KEY_LENGTH + 1).to_bytes(2, "big"))

    def test_http_request_is_not_a_box(self) -> None:
        with self.assertRaises(MalformedBox):
            BoxReader().feed(b"GET / HTTP/1.0\r\n\r\n")

    def test_box_size_bounded(self) -> None:
        reader = BoxReader(max_box_bytes=1000)
        pair = encode_box({b"k": b"v" * 300})[:-2]  # one pair, box not ended
        reader.feed(pair * 3)
        with self.assertRaises(MalformedBox):
            reader.feed(pair)

    def test_incomplete_box_kept(self) -> None:
        wire = encode_box({b"_answer": b"1", b"changed": b"True"})
        reader = BoxReader()
        self.assertEqual(reader.feed(wire[:-1]), [])
        self.assertEqual(reader.pending, len(wire) - 1)
        self.assertEqual(
            reader.feed(wire[-1:] + wire[:3]), [{b"_answer": b"1", b"changed": b"True"}]
        )
        self.assertEqual(reader.pending, 3)

    def test_empty_box(self) -> None:
        self.assertEqual(BoxReader().feed(b"\x00\x00"), [{}])
        self.assertEqual(encode_box({}), b"\x00\x00")

    def test_repeated_key_last_wins_as_in_twisted(self) -> None:
        wire = b"\x00\x01k\x00\x01a\x00\x01k\x00\x01b\x00\x00"
        self.assertEqual(BoxReader().feed(wire), twisted_parse(wire, 64))
        self.assertEqual(BoxReader().feed(wire), [{b"k": b"b"}])
