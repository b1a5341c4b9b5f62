"""Digests: `herald dev` as a process gathers a rule's uploads into one email per window, sent
to a real SMTP server, also when the process was stopped while the window was open.
"""

from concurrent.futures import ThreadPoolExecutor
import time

from conftest import HeraldProcess, smtp_config
from test_dev import s3_client


def digest_rules(secs, extra=""):
    return (
        extra
        + "[[rule]]\n"
        'name = "batch"\n'
        'to = ["team@example.com"]\n'
        f"digest_secs = {secs}\n"
    )


def start_dev(tmp_path, port, rules):
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(port, rules), encoding="utf-8")
    herald = HeraldProcess(
        ["--config", str(config), "dev", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--bucket", "uploads"],
        cwd=tmp_path,
    )
    return herald, herald.wait_for_line("ready: ")


def text_of(received):
    return received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def test_fifty_uploads_in_a_two_second_window_make_one_email(tmp_path, smtp_server):
    controller, recorder = smtp_server
    herald, endpoint = start_dev(tmp_path, controller.port, digest_rules(2))
    try:
        s3 = s3_client(endpoint)
        files = {f"batch/file-{n:02d}.bin": b"x" * (n * 37 + 1) for n in range(50)}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda item: s3.put_object(Bucket="uploads", Key=item[0],
                                                     Body=item[1]), files.items()))
        took = time.monotonic() - started
        assert took < 2.0, f"uploads took {took:.1f} s, longer than the window"
        for key in files:
            herald.wait_for_text(f"upload: uploads/{key} ")

        messages = recorder.wait_for(1, timeout=20)
        time.sleep(3)
        messages = list(recorder.messages)
        assert len(messages) == 1, [m.message["subject"] for m in messages]
        [received] = messages
        total = sum(len(body) for body in files.values())
        assert received.message["subject"] == (
            f"50 new files for batch ({human(total)})"), received.message["subject"]
        assert received.message["message-id"].startswith("<herald.digest.")
        assert received.rcpt_tos == ["team@example.com"]
        text = text_of(received)
        assert f"{total:,} bytes) in all" in text, text
        for key, body in files.items():
            name = key.split("/")[-1]
            assert text.count(f". {name}\n") == 1, f"{name} not listed once:\n{text}"
            assert f"uploads/{key}" in text
            assert f"({len(body):,} bytes)" in text
        gathered = [line for line in herald.output if "gathered by rule \"batch\"" in line]
        assert len(gathered) == 50, "".join(herald.output)
    finally:
        assert herald.stop() == 0, "".join(herald.output)


def test_a_window_open_at_sigterm_is_sent_once_after_the_restart(tmp_path, smtp_server):
    controller, recorder = smtp_server
    state = tmp_path / "state" / "herald.redb"
    extra = f'[dedupe]\ntype = "local"\npath = "{state}"\n[digest]\npath = "{state}"\n'
    rules = digest_rules(4, extra)
    herald, endpoint = start_dev(tmp_path, controller.port, rules)
    try:
        s3 = s3_client(endpoint)
        for name in ["one.txt", "two.txt", "three.txt"]:
            s3.put_object(Bucket="uploads", Key=name, Body=name.encode())
            herald.wait_for_text(f"upload: uploads/{name} ")
    finally:
        assert herald.stop() == 0, "".join(herald.output)
    assert recorder.messages == [], "sent before the window closed"

    herald, _ = start_dev(tmp_path, controller.port, rules)
    try:
        messages = recorder.wait_for(1, timeout=20)
        time.sleep(2)
        messages = list(recorder.messages)
        assert len(messages) == 1, [m.message["subject"] for m in messages]
        text = text_of(messages[0])
        assert messages[0].message["subject"] == "3 new files for batch (23 B)"
        for name in ["one.txt", "two.txt", "three.txt"]:
            assert text.count(f". {name}\n") == 1, text
    finally:
        assert herald.stop() == 0, "".join(herald.output)


def human(size):
    """The size as Herald's templates show it, for sizes under a MiB."""
    if size < 1024:
        return f"{size} B"
    tenths = (size * 10 + 512) // 1024
    return f"{tenths // 10}.{tenths % 10} KiB"
