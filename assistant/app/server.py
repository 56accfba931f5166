"""Starting the app: refuse to listen beyond this machine without a password."""

from __future__ import annotations

import ipaddress
import os
import threading

from ..api import Assistant, NarrativeLensError

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
AUTH_ENV = "NARRATIVE_LENS_AUTH"


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise NarrativeLensError("--auth must look like user:password")
    return user, password


def serve(assistant: Assistant, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, concurrency: int = 8) -> None:
    credentials = parse_auth(auth or os.environ.get(AUTH_ENV))
    if not is_local(host) and credentials is None:
        raise NarrativeLensError(
            f"refusing to listen on {host} without a password: pass --auth user:password or set {AUTH_ENV}"
        )
    # Load the index, the matcher and the encoder while Gradio is imported and the page is laid out:
    # both are ready before the first visitor arrives, in less time than one after the other.
    failures: list[Exception] = []

    def load() -> None:
        try:
            assistant.prepare().questions  # the follow-up index too
            warm_up(assistant)
        except Exception as error:  # raised again in this thread, where the CLI reports it
            failures.append(error)

    loading = threading.Thread(target=load, name="load-models", daemon=True)
    loading.start()
    from .ui import CSS, build_app

    demo = build_app(assistant)
    loading.join()
    if failures:
        raise failures[0]
    demo.queue(default_concurrency_limit=concurrency)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=credentials,
        show_error=False,
        ssr_mode=False,
        quiet=True,
        css=CSS,
        footer_links=["api"],
        run_history=False,  # pasted posts are not kept in the browser
    )


def warm_up(assistant: Assistant) -> None:
    """The first-use work the first answer would wait for: one analysis of a labelled example (Chroma reads the
    passage index from disk on its first search, which overlaps with Gradio's import), and the import of
    matplotlib, which Gradio asks for its backend around every event."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    sample = next((example.text for example in assistant.kb.examples if example.narratives), None)
    if sample:
        try:
            assistant.analyze(sample)
        except Exception:  # a store that is down now is reported on the visitor's own question
            pass
