"""Sign-in throttling: failed sign-ins per account and per address lock both login forms for a while."""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests
from django.test import Client

from tests.factories import make_superuser
from unpuzzle.models import SignInFailure

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"
ATTACKER = "203.0.113.7"
LOCKED = "Too many failed sign-ins for this account or address; try again in"


@pytest.fixture(autouse=True)
def limits(settings):
    """The production defaults, stated here so the numbers below read plainly."""
    settings.LOGIN_MAX_FAILURES = 5
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 20
    settings.LOGIN_LOCKOUT_S = 900
    settings.NUM_PROXIES = 0


@pytest.fixture
def admin(db):
    return make_superuser(username="admin", password=PASSWORD)


def sign_in(client: Client, username: str, password: str, *, address: str = ATTACKER, path: str = "/admin/login/"):
    return client.post(
        f"{path}?next=/admin/", {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def locked(response) -> bool:
    return LOCKED in response.content.decode()


def test_forty_wrong_passwords_then_the_right_one_is_refused_with_the_lockout_message(admin):
    client = Client()
    answers = [sign_in(client, "admin", f"guess-{n}") for n in range(40)]

    assert [a.status_code for a in answers] == [200] * 40
    assert [locked(a) for a in answers] == [False] * 5 + [True] * 35
    right = sign_in(client, "admin", PASSWORD)
    assert right.status_code == 200 and locked(right)
    assert "try again in 15 minutes" in right.content.decode()
    assert not signed_in(client)
    # Refused attempts are not counted: the lock ends 15 minutes after the failures, not later.
    assert SignInFailure.objects.count() == 5


def test_the_account_lock_holds_from_any_address(admin):
    client = Client()
    for n in range(5):
        assert not locked(sign_in(client, "admin", f"guess-{n}", address=f"198.51.100.{n}"))
    right = sign_in(client, "admin", PASSWORD, address="192.0.2.1")
    assert locked(right) and not signed_in(client)


def test_one_address_is_locked_across_usernames_and_other_addresses_are_not(admin):
    client = Client()
    answers = [sign_in(client, f"someone{n}", "guess") for n in range(40)]
    assert [locked(a) for a in answers] == [False] * 20 + [True] * 20

    refused = sign_in(client, "admin", PASSWORD)
    assert locked(refused) and not signed_in(client)
    elsewhere = sign_in(client, "admin", PASSWORD, address="192.0.2.1")
    assert elsewhere.status_code == 302 and signed_in(client)


def test_usernames_differing_in_case_share_one_count(admin):
    client = Client()
    for n, name in enumerate(["admin", "Admin", "ADMIN", "aDmin", "admiN"]):
        assert not locked(sign_in(client, name, f"guess-{n}", address=f"198.51.100.{n}"))
    assert locked(sign_in(client, "admin", PASSWORD, address="192.0.2.1"))


def test_a_lockout_expires(settings, admin):
    settings.LOGIN_LOCKOUT_S = 1
    client = Client()
    for n in range(5):
        sign_in(client, "admin", f"guess-{n}")
    refused = sign_in(client, "admin", PASSWORD)
    assert locked(refused) and "try again in 1 minute" in refused.content.decode()

    time.sleep(1.1)
    right = sign_in(client, "admin", PASSWORD)
    assert right.status_code == 302 and signed_in(client)


def test_a_successful_sign_in_clears_that_address_failures_for_the_account(admin):
    client = Client()
    for n in range(4):
        sign_in(client, "admin", f"guess-{n}")
    assert sign_in(client, "admin", PASSWORD).status_code == 302
    client.logout()
    for n in range(4):
        assert not locked(sign_in(client, "admin", f"typo-{n}"))
    assert sign_in(client, "admin", PASSWORD).status_code == 302


def test_the_site_login_form_is_throttled_and_shows_the_message(admin):
    client = Client()
    for n in range(5):
        first = sign_in(client, "admin", f"guess-{n}", path="/accounts/login/")
        assert not locked(first)
    right = sign_in(client, "admin", PASSWORD, path="/accounts/login/")
    assert right.status_code == 200 and locked(right) and not signed_in(client)
    # The two forms share one count: the admin's is locked too.
    assert locked(sign_in(client, "admin", PASSWORD))


def test_limits_of_zero_switch_the_throttle_off(settings, admin):
    settings.LOGIN_MAX_FAILURES = 0
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 0
    client = Client()
    for n in range(30):
        assert not locked(sign_in(client, "admin", f"guess-{n}"))
    assert sign_in(client, "admin", PASSWORD).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_over_http_check_at_most_the_allowed_number(live_server, settings):
    """Each attempt is counted before its password is checked, so a burst cannot slip past the count."""
    make_superuser(username="admin", password=PASSWORD)
    session = requests.Session()
    page = session.get(f"{live_server.url}/admin/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    start = threading.Barrier(12)
    answers: list[str] = []

    def guess(n: int) -> None:
        start.wait()
        response = session.post(
            f"{live_server.url}/admin/login/",
            data={"username": "admin", "password": f"guess-{n}", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{live_server.url}/admin/login/"},
            timeout=30,
        )
        answers.append("locked" if LOCKED in response.text else "checked")

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 12
    assert answers.count("checked") <= 5
    assert SignInFailure.objects.filter(username="admin").count() <= 5


def test_an_administrator_lifts_a_lockout_by_deleting_the_failures(admin):
    attacker = Client()
    for n in range(5):
        sign_in(attacker, "admin", f"guess-{n}")
    colleague = Client()
    colleague.force_login(make_superuser(username="colleague"))
    changelist = colleague.get("/admin/unpuzzle/signinfailure/", {"q": "admin"})
    assert changelist.status_code == 200 and ATTACKER in changelist.content.decode()
    ids = [str(pk) for pk in SignInFailure.objects.filter(username="admin").values_list("pk", flat=True)]
    colleague.post(
        "/admin/unpuzzle/signinfailure/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert sign_in(Client(), "admin", PASSWORD).status_code == 302
