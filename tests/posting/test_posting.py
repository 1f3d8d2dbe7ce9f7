"""A post reaches every member with the list's headers."""

from support import DOMAIN, RunningServer, Sink, cli, make_message


def test_post_reaches_every_member_with_list_headers(start_server, sink: Sink) -> None:
    server: RunningServer = start_server()
    result = cli(
        server.config_path, "members", "add", "test", "--no-welcome", "a@x.example", "b@y.example"
    )
    assert result.exit_code == 0, result.output
    server.send("a@x.example", f"test@{DOMAIN}", make_message("a@x.example", subject="Привет"))
    got = sink.wait_for_recipients({"a@x.example", "b@y.example"})
    message = got[0].message
    assert got[0].mail_from == f"test-bounces@{DOMAIN}"
    assert message["List-Id"] == f'"Test list test" <test.{DOMAIN}>'
    assert message["List-Post"] == f"<mailto:test@{DOMAIN}>"
    assert message["Precedence"] == "list"
    assert message["Subject"] == "[test] Привет"
