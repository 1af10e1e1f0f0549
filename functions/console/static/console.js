// The reception console: sign in to the staff user pool, watch the open conversations, answer guests.
// Plain JavaScript, no build step and nothing from elsewhere: every call goes to this API or the pool's endpoint.
"use strict";

const TOKEN = "concierge.idToken";
const EMAIL = "concierge.email";
// The page is served at <api>/console/: the API's routes are one level up, with or without a stage prefix.
const API = new URL("../", window.location.href);
const $ = (id) => document.getElementById(id);

let config = null;
let pending = null; // a NEW_PASSWORD_REQUIRED challenge: {session, email}
let current = null; // the open conversation: {session_id, user_id, guest_name, room_number}
let listTimer = null;
let chatTimer = null;

class Unauthorized extends Error {}

async function loadConfig() {
  const response = await fetch(new URL("console/config.json", API));
  config = await response.json();
}

async function cognito(target, body) {
  const response = await fetch(config.signInUrl, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
    },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer.message || answer.__type || `sign-in failed (${response.status})`);
  }
  return answer;
}

async function signIn(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  $("sign-in-error").textContent = "";
  try {
    let answer;
    if (pending) {
      answer = await cognito("RespondToAuthChallenge", {
        ClientId: config.clientId,
        ChallengeName: "NEW_PASSWORD_REQUIRED",
        Session: pending.session,
        ChallengeResponses: { USERNAME: pending.email, NEW_PASSWORD: $("new-password").value },
      });
    } else {
      answer = await cognito("InitiateAuth", {
        ClientId: config.clientId,
        AuthFlow: "USER_PASSWORD_AUTH",
        AuthParameters: { USERNAME: email, PASSWORD: password },
      });
    }
    if (answer.ChallengeName === "NEW_PASSWORD_REQUIRED") {
      pending = { session: answer.Session, email };
      $("new-password-row").hidden = false;
      $("new-password").focus();
      $("sign-in-error").textContent = "Choose a new password to finish your first sign-in.";
      return;
    }
    pending = null;
    sessionStorage.setItem(TOKEN, answer.AuthenticationResult.IdToken);
    sessionStorage.setItem(EMAIL, email);
    $("password").value = "";
    showDesk();
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(EMAIL);
  clearInterval(listTimer);
  clearInterval(chatTimer);
  current = null;
  $("desk").hidden = true;
  $("sign-out").hidden = true;
  $("who").hidden = true;
  $("waiting-count").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = typeof message === "string" ? message : "";
  $("email").focus();
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN);
  const response = await fetch(new URL(path, API), {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) {
    throw new Unauthorized();
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer.message || `the API answered ${response.status}`);
  }
  return answer;
}

function handle(where) {
  return (error) => {
    if (error instanceof Unauthorized) {
      signOut("Your sign-in has expired; sign in again.");
    } else {
      $(where).textContent = error.message;
    }
  };
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function refreshList() {
  const answer = await api("GET", "api/v1/sessions?status=open&limit=100");
  const sessions = answer.sessions;
  const waiting = sessions.filter((session) => session.waiting_since).length;
  $("waiting-count").hidden = false;
  $("waiting-count").textContent = `${waiting} waiting · ${sessions.length} open`;
  $("list-error").textContent = "";
  $("empty").hidden = sessions.length > 0;
  const list = $("sessions");
  list.replaceChildren(
    ...sessions.map((session) => {
      const item = element("li", `session${session.waiting_since ? " waiting" : ""}`);
      item.tabIndex = 0;
      item.dataset.sessionId = session.session_id;
      item.setAttribute("role", "button");
      const name = element("span", "name", `${session.guest_name} · room ${session.room_number}`);
      // A request the bot routed names its department, so the right person picks it up.
      const waitingFor = session.request ? `${session.request.department} request` : "waiting";
      if (session.waiting_since) name.append(element("span", "badge", waitingFor));
      const last = session.last_message || {};
      item.append(name, element("span", "time", when(last.created_at)), element("span", "last", last.text || ""));
      item.setAttribute(
        "aria-label",
        `${session.guest_name}, room ${session.room_number}${session.waiting_since ? `, waiting for staff (${waitingFor})` : ""}: ${last.text || ""}`,
      );
      if (current && current.session_id === session.session_id) item.setAttribute("aria-current", "true");
      item.addEventListener("click", () => openChat(session));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          openChat(session);
        }
      });
      return item;
    }),
  );
  if (current && !sessions.some((session) => session.session_id === current.session_id)) {
    closeChat();
  }
}

const TICKS = {
  PENDING: ["🕓", "queued"],
  SENDING: ["🕓", "sending"],
  SENT: ["✓", "sent"],
  DELIVERED: ["✓✓", "delivered"],
  READ: ["✓✓", "read"],
  FAILED: ["!", "failed"],
};

function messageItem(message) {
  const ours = message.role !== "User";
  const item = element("li", `message${ours ? " ours" : ""}`);
  item.dataset.messageId = message.id;
  item.dataset.status = message.status;
  const media = message.media;
  if (media && media.url && (media.mimetype || "").startsWith("image/")) {
    const link = element("a");
    link.href = media.url;
    link.target = "_blank";
    link.rel = "noopener";
    const image = element("img");
    image.src = media.url;
    image.alt = media.filename ? `Photo: ${media.filename}` : "Photo from the guest";
    image.loading = "lazy";
    link.append(image);
    item.append(link);
  } else if (media) {
    item.append(element("span", "muted", `[${media.filename || media.mimetype}${media.error ? ": " + media.error : ""}]`));
    item.append(document.createElement("br"));
  }
  item.append(document.createTextNode(message.text || ""));
  const who = message.role === "User" ? "Guest" : message.role === "System" ? "Bot" : `Staff: ${message.author || "?"}`;
  const meta = element("span", "meta", `${who} · ${when(message.created_at)}`);
  if (ours && TICKS[message.status]) {
    const [mark, label] = TICKS[message.status];
    const tick = element("span", `tick ${label}`, mark);
    tick.setAttribute("role", "img");
    tick.setAttribute("aria-label", message.status === "FAILED" ? `failed: ${message.error || "unknown"}` : label);
    tick.title = message.status === "FAILED" ? `Not delivered: ${message.error || "unknown reason"}` : label;
    if (message.status === "FAILED") tick.tabIndex = 0;
    meta.append(tick);
  }
  item.append(meta);
  return item;
}

async function refreshChat() {
  if (!current) return;
  const opened = current;
  let messages = [];
  let cursor = null;
  do {
    const query = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page = await api("GET", `api/v1/guests/${encodeURIComponent(opened.user_id)}/messages?${query}`);
    messages = messages.concat(page.messages.filter((message) => message.session_id === opened.session_id));
    cursor = page.next_cursor;
  } while (cursor);
  if (current !== opened) return;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...messages.map(messageItem));
  $("chat-error").textContent = "";
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function openChat(session) {
  current = session;
  $("chat-title").textContent = `${session.guest_name} · room ${session.room_number}`;
  $("chat-pane").hidden = false;
  $("desk").classList.add("reading");
  $("messages").replaceChildren();
  for (const item of $("sessions").children) {
    item.setAttribute("aria-current", String(item.dataset.sessionId === session.session_id));
  }
  clearInterval(chatTimer);
  refreshChat().catch(handle("chat-error"));
  chatTimer = setInterval(() => refreshChat().catch(handle("chat-error")), config.refreshSeconds * 1000);
  $("reply").focus();
}

function closeChat() {
  current = null;
  clearInterval(chatTimer);
  $("chat-pane").hidden = true;
  $("desk").classList.remove("reading");
}

async function sendReply(event) {
  event.preventDefault();
  const text = $("reply").value;
  if (!current || !text.trim()) return;
  try {
    await api("POST", `api/v1/sessions/${encodeURIComponent(current.session_id)}/messages`, { text });
    $("reply").value = "";
    await refreshChat();
    await refreshList();
  } catch (error) {
    handle("chat-error")(error);
  }
}

async function resolve() {
  if (!current) return;
  try {
    await api("POST", `api/v1/sessions/${encodeURIComponent(current.session_id)}/resolve`);
    await refreshList();
  } catch (error) {
    handle("chat-error")(error);
  }
}

async function checkout() {
  if (!current) return;
  if (!window.confirm(`Check ${current.guest_name} (room ${current.room_number}) out? The guest gets the farewell.`)) return;
  try {
    await api("POST", `api/v1/guests/${encodeURIComponent(current.user_id)}/checkout`);
    closeChat();
    await refreshList();
  } catch (error) {
    handle("chat-error")(error);
  }
}

function showDesk() {
  $("sign-in").hidden = true;
  $("desk").hidden = false;
  $("sign-out").hidden = false;
  $("who").hidden = false;
  $("who").textContent = sessionStorage.getItem(EMAIL) || "";
  clearInterval(listTimer);
  refreshList().catch(handle("list-error"));
  listTimer = setInterval(() => refreshList().catch(handle("list-error")), config.refreshSeconds * 1000);
}

async function start() {
  await loadConfig();
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("reply-form").addEventListener("submit", sendReply);
  $("reply").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("resolve").addEventListener("click", resolve);
  $("checkout").addEventListener("click", checkout);
  $("back").addEventListener("click", closeChat);
  if (sessionStorage.getItem(TOKEN)) {
    showDesk();
  } else {
    signOut();
  }
}

start();
