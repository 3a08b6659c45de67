// The password-reset page (/reader/reset, issue 27): posts the new password as JSON with the reader CSRF header
// (double submit: the baonhung_reader_csrf cookie's value) and shows the outcome. No inline script: the page's CSP.
const form = document.getElementById("reset-form");
const outcome = document.getElementById("outcome");
const CSRF_COOKIE = "baonhung_reader_csrf";

// the token stays in the form only: out of the address bar and the history
if (window.history && window.history.replaceState) {
  const url = new URL(window.location.href);
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search);
}

function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
}

function show(kind, text) {
  outcome.dataset.kind = kind;
  outcome.textContent = text;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = form.elements.password.value;
  if (password !== form.elements.again.value) {
    show("error", form.dataset.mismatch);
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie(CSRF_COOKIE) },
      body: JSON.stringify({ token: form.elements.token.value, password }),
    });
    if (response.status === 204) {
      form.hidden = true;
      show("done", form.dataset.done);
      document.getElementById("back").hidden = false;
      return;
    }
    let message = form.dataset.failed;
    try {
      message = (await response.json()).message || message;
    } catch (_) { /* not JSON: the generic message */ }
    show("error", message);
  } catch (_) {
    show("error", form.dataset.failed);
  } finally {
    button.disabled = false;
  }
});
