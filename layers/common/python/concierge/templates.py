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


# Our own copy, in the guide's voice, for what the guide plans but does not word.
OUT_OF_HOURS = (
    "Terima kasih atas pesan Anda. 🙏\n"
    "\n"
    "Saat ini tim kami sedang di luar jam layanan. Kami akan membalas pesan Anda mulai pukul {opens_at}."
)

FAREWELL = (
    "Terima kasih telah menginap bersama kami, {guest_name}. 🙏\n"
    "\n"
    "Semoga perjalanan Anda menyenangkan dan sampai jumpa kembali! 🏨"
)

OPTED_OUT = (
    "Anda tidak akan lagi menerima pesan otomatis dari kami. Pesan dari staf hotel tetap dapat Anda terima.\n"
    "\n"
    "Balas MULAI untuk mengaktifkannya kembali."
)

OPTED_IN = "Pesan otomatis dari kami telah diaktifkan kembali. Balas BERHENTI kapan saja untuk menghentikannya."

_PLACEHOLDER = re.compile(r"\{(guest_name|room_number|opens_at)\}")


def _render(template: str, **values: str) -> str:
    # One pass over the template: a guest's name holding "{room_number}" stays as written.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def welcome(guest_name: str, room_number: str) -> str:
    return _render(WELCOME, guest_name=guest_name, room_number=room_number)


def auto_reply() -> str:
    return AUTO_REPLY


def out_of_hours(opens_at: str) -> str:
    return _render(OUT_OF_HOURS, opens_at=opens_at)


def farewell(guest_name: str) -> str:
    return _render(FAREWELL, guest_name=guest_name)


def opted_out() -> str:
    return OPTED_OUT


def opted_in() -> str:
    return OPTED_IN
