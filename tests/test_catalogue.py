# -*- test-case-name: tests.test_catalogue -*-
"""
Tests for L{ismon.core.catalogue}: the 2004 message texts (README: Messages), log-line
safety of substituted values, and the 400-byte folding rule.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.catalogue import MAX_LINE_BYTES, MessageId, fold, render
from ismon.core.protocols import label_of

# The 2004 catalogue (the README's Messages table, ids 1-83), with <cmd>,
# <P>, xx, nn and xxx filled in.  These strings are what
# cluster scripts grep for: they must match the 2004 product byte for byte.
_CATALOGUE_2004 = {
    1: "The {cmd} has started watching {P}. [ID:w1]",
    2: "The {cmd} is going to watch {P} daemon. [ID:w1]",
    3: "The {cmd} will stop watching {P} daemon. [ID:w1]",
    6: "The {cmd} will terminate. [ID:w1]",
    7: "The {cmd} is going to stop monitoring. [ID:w1]",
    8: "The {cmd} is going to monitor. [ID:w1]",
    11: "Invalid parameter in the {cmd}. [ID:w1]",
    13: "The monitor id is not specified at the {cmd} command. [ID:w1]",
    14: "The specified monitor id is already under use in other processes. [ID:w1]",
    15: "The {cmd} has not performed end processing. [ID:w1]",
    42: "The {cmd} has detected system error (socket 24). [ID:w1]",
    71: "The {cmd} has detected network error(socket error[24]). [ID:w1]",
    72: "The {cmd} has detected network error(connect error[24]). [ID:w1]",
    73: "The {cmd} has detected network error(send error[24]). [ID:w1]",
    74: "The {cmd} has detected network error(select error[24]). [ID:w1]",
    75: "The {cmd} has detected network error(recv error[24]). [ID:w1]",
    81: "Failed to execute name resolution(error[24]). [ID:w1]",
    82: "The clp_httpmon has detected an error in HTTP(invalid response). [ID:w1]",
    83: "The {cmd} has detected an error in {P}(invalid status code[24]). [ID:w1]",
}

_COMMANDS = {"clp_httpmon": "HTTP", "clp_smtpmon": "SMTP"}


class Catalogue2004Tests(SynchronousTestCase):
    """
    Every 2004 message renders with its verbatim text.
    """

    def test_every_2004_message_exists(self) -> None:
        """
        Each id of the 2004 catalogue is a L{MessageId}, and every 2004 id
        below 90 is in the table (licence ids 51-56 are gone; 84-87 are
        ismon's HTTP checks).
        """
        for number in _CATALOGUE_2004:
            self.assertEqual(int(MessageId(number)), number)
        old = {int(m) for m in MessageId if m < 90 and not 84 <= m <= 87}
        self.assertEqual(old, set(_CATALOGUE_2004))
        for licence in range(51, 57):
            self.assertNotIn(licence, {int(m) for m in MessageId})

    def test_verbatim_texts(self) -> None:
        """
        For both commands, each message renders as the 2004 text.
        """
        for command, proto in _COMMANDS.items():
            for number, template in _CATALOGUE_2004.items():
                with self.subTest(command=command, id=number):
                    self.assertEqual(
                        render(
                            MessageId(number),
                            command=command,
                            protocol=label_of(command),
                            watch_id="w1",
                            number=24,
                            function="socket",
                        ),
                        template.format(cmd=command, P=proto),
                    )

    def test_started_example(self) -> None:
        """
        The example from the brief, spelled out literally.
        """
        self.assertEqual(
            render(
                MessageId.STARTED,
                command="clp_httpmon",
                protocol=label_of("clp_httpmon"),
                watch_id="web1",
            ),
            "The clp_httpmon has started watching HTTP. [ID:web1]",
        )
        self.assertEqual(
            render(
                MessageId.STARTED,
                command="clp_smtpmon",
                protocol=label_of("clp_smtpmon"),
                watch_id="mail1",
            ),
            "The clp_smtpmon has started watching SMTP. [ID:mail1]",
        )

    def test_timeout_number(self) -> None:
        """
        Message 74 carries errno ETIMEDOUT as C{nn}; 75 may carry 0 (a clean
        close), which is rendered, not dropped.
        """
        self.assertEqual(
            render(
                MessageId.SELECT_ERROR,
                command="clp_smtpmon",
                protocol=label_of("clp_smtpmon"),
                watch_id="m",
                number=110,
            ),
            "The clp_smtpmon has detected network error(select error[110]). [ID:m]",
        )
        self.assertEqual(
            render(
                MessageId.RECV_ERROR,
                command="clp_httpmon",
                protocol=label_of("clp_httpmon"),
                watch_id="m",
                number=0,
            ),
            "The clp_httpmon has detected network error(recv error[0]). [ID:m]",
        )

    def test_invalid_response_always_names_httpmon(self) -> None:
        """
        Message 82 names clp_httpmon whatever command renders it (2004 text).
        """
        self.assertEqual(
            render(
                MessageId.INVALID_RESPONSE,
                command="clp_smtpmon",
                protocol=label_of("clp_smtpmon"),
                watch_id="x",
            ),
            "The clp_httpmon has detected an error in HTTP(invalid response). [ID:x]",
        )

    def test_new_messages_keep_the_shape(self) -> None:
        """
        Ids added by ismon (84-87, 90 and up) are one sentence ending in the
        ID tag, naming the command.
        """
        for message in MessageId:
            if message < 90 and not 84 <= message <= 87:
                continue
            with self.subTest(id=int(message)):
                text = render(
                    message,
                    command="clp_httpmon",
                    protocol=label_of("clp_httpmon"),
                    watch_id="w",
                    number=3,
                    detail="d",
                )
                self.assertTrue(text.startswith("The clp_httpmon "), text)
                self.assertTrue(text.endswith(". [ID:w]"), text)
                self.assertNotIn("{", text)

    def test_detail_substituted(self) -> None:
        """
        The free-text detail lands inside the sentence.
        """
        self.assertEqual(
            render(
                MessageId.TLS_HANDSHAKE_ERROR,
                command="clp_httpmon",
                protocol=label_of("clp_httpmon"),
                watch_id="w",
                detail="alert 40",
            ),
            "The clp_httpmon has detected an error in TLS(handshake error: alert 40). [ID:w]",
        )


class NeutralisationTests(SynchronousTestCase):
    """
    Control characters in substituted values cannot forge log lines.
    """

    def test_control_characters_in_watch_id(self) -> None:
        text = render(
            MessageId.STARTED,
            command="clp_httpmon",
            protocol=label_of("clp_httpmon"),
            watch_id="a\nb\rc\x00d\x1be",
        )
        self.assertEqual(text, "The clp_httpmon has started watching HTTP. [ID:a?b?c?d?e]")

    def test_control_characters_in_detail(self) -> None:
        text = render(
            MessageId.PROBE_FAILED_RETRYING,
            command="clp_smtpmon",
            protocol=label_of("clp_smtpmon"),
            watch_id="w",
            detail="250 ok\r\nThe clp_smtpmon will terminate. [ID:w]",
        )
        self.assertNotIn("\n", text)
        self.assertNotIn("\r", text)
        self.assertIn("250 ok??The clp_smtpmon will terminate.", text)

    def test_control_characters_in_function(self) -> None:
        text = render(
            MessageId.SYSTEM_ERROR,
            command="clp_httpmon",
            protocol=label_of("clp_httpmon"),
            watch_id="w",
            function="f\n",
            number=1,
        )
        self.assertEqual(text, "The clp_httpmon has detected system error (f? 1). [ID:w]")

    def test_unicode_line_breaks(self) -> None:
        """
        Unicode line and paragraph separators and DEL are neutralised too.
        """
        text = render(
            MessageId.STARTED,
            command="clp_httpmon",
            protocol=label_of("clp_httpmon"),
            watch_id="a\u2028b\u2029c\x7fd\x85e",
        )
        self.assertTrue(text.endswith("[ID:a?b?c?d?e]"), text)

    @given(st.text(max_size=300), st.text(max_size=300))
    def test_never_multi_line(self, watch_id: str, detail: str) -> None:
        """
        Whatever the values, the rendering is one line of printable text.
        """
        for message in MessageId:
            text = render(
                message,
                command="clp_smtpmon",
                protocol=label_of("clp_smtpmon"),
                watch_id=watch_id,
                detail=detail,
            )
            self.assertTrue(text.isprintable(), repr(text))
            self.assertEqual(len(text.splitlines()), 1)


def _is_whole_utf8(piece: str) -> bool:
    return piece.encode("utf-8").decode("utf-8") == piece


class FoldTests(SynchronousTestCase):
    """
    L{fold} keeps every line within 400 bytes and every character whole.
    """

    def test_short_line_untouched(self) -> None:
        self.assertEqual(fold("abc"), ["abc"])
        self.assertEqual(fold(""), [""])

    def test_exactly_at_limit(self) -> None:
        line = "x" * MAX_LINE_BYTES
        self.assertEqual(fold(line), [line])

    def test_one_over_limit(self) -> None:
        line = "x" * (MAX_LINE_BYTES + 1)
        self.assertEqual(fold(line), ["x" * MAX_LINE_BYTES, "x"])

    def test_multi_byte_at_boundary(self) -> None:
        """
        A 3-byte character straddling byte 400 moves whole to the next piece.
        """
        line = "a" * 399 + "\u3042" + "b"
        pieces = fold(line)
        self.assertEqual(pieces, ["a" * 399, "\u3042b"])

    def test_four_byte_characters(self) -> None:
        line = "\U0001f600" * 250  # 1000 bytes
        pieces = fold(line)
        self.assertEqual("".join(pieces), line)
        self.assertEqual([len(p.encode()) for p in pieces], [400, 400, 200])

    def test_limit_too_small_for_a_character(self) -> None:
        """
        A limit that cannot hold one UTF-8 character is refused instead of
        looping forever.
        """
        self.assertRaises(ValueError, fold, "\U0001f600" * 3, 3)

    @given(st.text(max_size=2000))
    def test_fold_property(self, line: str) -> None:
        """
        Pieces are at most 400 bytes, each a whole UTF-8 string, and they
        join back into the line.
        """
        pieces = fold(line)
        self.assertEqual("".join(pieces), line)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8")), MAX_LINE_BYTES)
            self.assertTrue(_is_whole_utf8(piece))
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            self.assertNotIn("", pieces)

    @given(st.text(min_size=1, max_size=500), st.integers(min_value=4, max_value=450))
    def test_fold_property_any_limit(self, line: str, limit: int) -> None:
        """
        The same holds for any limit that fits one character.
        """
        pieces = fold(line, limit)
        self.assertEqual("".join(pieces), line)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8")), limit)
            self.assertNotEqual(piece, "")

    @given(
        st.text(
            alphabet=st.characters(min_codepoint=0x80, exclude_categories=("Cs",)),
            max_size=600,
        )
    )
    def test_fold_non_ascii(self, line: str) -> None:
        """
        Lines of only multi-byte characters (the risky case) fold cleanly.
        """
        pieces = fold(line)
        self.assertEqual("".join(pieces), line)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8")), MAX_LINE_BYTES)

    def test_rendered_then_folded(self) -> None:
        """
        A rendered message with a huge detail folds into lines of <= 400 bytes.
        """
        text = render(
            MessageId.PROBE_FAILED_RETRYING,
            command="clp_httpmon",
            protocol=label_of("clp_httpmon"),
            watch_id="w",
            detail="\u00e9" * 1000,
        )
        pieces = fold(text)
        self.assertGreater(len(pieces), 1)
        self.assertEqual("".join(pieces), text)
        self.assertTrue(all(len(p.encode()) <= 400 for p in pieces))
