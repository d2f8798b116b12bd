// The sign-in page: the access token stays in this page's memory; the refresh token is an httpOnly cookie.
// Every text from the server is set with textContent, never as HTML.
"use strict";

let accessToken = null;

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("netra_csrf="));
  return found ? decodeURIComponent(found.slice("netra_csrf=".length)) : "";
}

function show(message) {
  document.getElementById("status").textContent = message;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error.message;
  } catch (e) {
    return "Request failed (" + response.status + ").";
  }
}

function nextPage() {
  // Only a path on this site: "/x", never "//host" or a scheme, so the login page cannot send anyone elsewhere.
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

async function showMe() {
  const response = await fetch("/api/me", { headers: { Authorization: "Bearer " + accessToken } });
  if (!response.ok) {
    show(await errorMessage(response));
    return;
  }
  const me = await response.json();
  document.getElementById("who").textContent = me.email;
  document.getElementById("role").textContent = me.role;
  document.getElementById("session").hidden = false;
  document.getElementById("login-form").hidden = true;
  show("");
}

async function signIn(event) {
  event.preventDefault();
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      email: document.getElementById("email").value,
      password: document.getElementById("password").value,
    }),
  });
  if (!response.ok) {
    show(await errorMessage(response));
    return;
  }
  accessToken = (await response.json()).access_token;
  document.getElementById("password").value = "";
  // The login also set the page session's cookie: on to the dashboard.
  window.location.assign(nextPage());
}

async function signOut() {
  await fetch("/api/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrfToken() } });
  accessToken = null;
  document.getElementById("session").hidden = true;
  document.getElementById("login-form").hidden = false;
  show("Signed out.");
}

async function resume() {
  // A reload loses the access token; the refresh cookie, if still valid, gets a new one.
  if (!csrfToken()) return;
  const response = await fetch("/api/auth/refresh", { method: "POST", headers: { "X-CSRF-Token": csrfToken() } });
  if (response.ok) {
    // Signed in already (a page's session cookie expired, or single sign-on came back here): on to the dashboard.
    accessToken = (await response.json()).access_token;
    window.location.assign(nextPage());
  }
}

async function offerSso() {
  // The SSO link shows only when the server has single sign-on configured.
  const response = await fetch("/api/auth/oidc");
  if (response.ok && (await response.json()).enabled) {
    document.getElementById("sso").hidden = false;
  }
}

document.getElementById("login-form").addEventListener("submit", signIn);
document.getElementById("logout").addEventListener("click", signOut);
offerSso();
resume();
