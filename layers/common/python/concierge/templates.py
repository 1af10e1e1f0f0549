"""The hotel's message copy (its WAHA integration guide), rendered in one place."""

from __future__ import annotations

import re

WELCOME = (
    "Halo {guest_name}! 👋\n"
    "\n"
    "Selamat datang di hotel kami. Anda telah berhasil check-in di kamar {room_number}.\n"
    "\n"
    "Jika Anda membutuhkan bantuan atau memiliki pertanyaan, silakan balas pesan ini dan kami akan segera "
    "membantu Anda.\n"
    "\n"
    "Terima kasih telah memilih hotel kami. Semoga Anda menikmati masa menginap Anda! 🏨"
)

AUTO_REPLY = (
    "Terima kasih atas pesan Anda. 🙏\n"
    "\n"
    "Tim kami akan segera merespons pertanyaan Anda. Mohon menunggu sebentar.\n"
    "\n"
    "Waktu respon normal: 5-10 menit"
)


_PLACEHOLDER = re.compile(r"\{(guest_name|room_number)\}")


def welcome(guest_name: str, room_number: str) -> str:
    # One pass over the template: a guest's name holding "{room_number}" stays as written.
    values = {"guest_name": guest_name, "room_number": room_number}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], WELCOME)


def auto_reply() -> str:
    return AUTO_REPLY
