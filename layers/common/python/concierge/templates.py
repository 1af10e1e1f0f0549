"""The hotel's message copy (its WAHA integration guide), rendered in one place."""

from __future__ import annotations

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


def welcome(guest_name: str, room_number: str) -> str:
    # replace(), not format(): a guest's name may hold braces.
    return WELCOME.replace("{guest_name}", guest_name).replace("{room_number}", room_number)


def auto_reply() -> str:
    return AUTO_REPLY
