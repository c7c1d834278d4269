// Voxpop browser simulator: a fake phone that talks to /simulator/api/* with fetch().
// All text is put on the page with textContent, never innerHTML: bot and citizen text is
// untrusted (survey authors and testers type anything).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("sim-data").textContent);
  const el = (id) => document.getElementById(id);
  const channel = el("channel");
  const address = el("address");
  const survey = el("survey");
  const log = el("log");
  const logBox = el("log-box");
  const text = el("text");
  const send = el("send");
  const start = el("start");
  const reset = el("reset");
  const phone = el("phone");
  const title = el("phone-title");
  const error = el("error");
  let busy = false;
  // The transcript being fetched: what the citizen sends next waits for it, so the log
  // never shows an answer above the conversation it belongs to.
  let loading = Promise.resolve();
  let shown = 0;

  function labelOf(name) {
    return data.labels[name] || name;
  }

  function scrollDown() {
    logBox.scrollTop = logBox.scrollHeight;
  }

  function node(tag, className, content) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (content !== undefined) n.textContent = content;
    return n;
  }

  function who(label) {
    // Read out by screen readers only; the bubble side says it visually.
    return node("span", "visually-hidden", label + ": ");
  }

  function addNote(message) {
    log.append(node("li", "note", message));
    scrollDown();
  }

  function addCitizen(message) {
    const li = node("li", "msg msg-user");
    const p = node("p", "msg-text");
    p.append(who("You"), document.createTextNode(message));
    li.append(p);
    log.append(li);
    scrollDown();
    return li;
  }

  function inLanguage(n, language) {
    // Screen readers read the text with the rules of the language it is written in.
    if (language) n.lang = language;
    return n;
  }

  function addBot(message) {
    const li = node("li", "msg msg-bot");
    const p = node("p", "msg-text");
    p.append(who("Voxpop"), inLanguage(node("span", "", message.text), message.language));
    li.append(p);
    if (message.buttons && message.buttons.length) {
      const keyboard = node("div", "keyboard");
      keyboard.setAttribute("role", "group");
      keyboard.setAttribute("aria-label", "Reply buttons");
      for (const row of message.buttons) {
        const line = node("div", "keyboard-row");
        for (const button of row) {
          const b = inLanguage(node("button", "keyboard-button", button.label), message.language);
          b.type = "button";
          b.addEventListener("click", () => sendMessage(button.label, button.payload));
          line.append(b);
        }
        keyboard.append(line);
      }
      li.append(keyboard);
    }
    if (typeof message.segments === "number") {
      const n = message.segments;
      li.append(node("p", "msg-meta", n + (n === 1 ? " segment" : " segments")));
    }
    log.append(li);
    scrollDown();
  }

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    start.disabled = value;
    reset.disabled = value;
    logBox.setAttribute("aria-busy", value ? "true" : "false");
  }

  // One call of the API; its messages, or null after showing why it failed. A blocking
  // call disables the buttons until it is answered.
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  async function call(path, body, blocking = true) {
    if (blocking) setBusy(true);
    showError("");
    try {
      const init = { headers: { Accept: "application/json" } };
      if (body) {
        init.method = "POST";
        init.headers["Content-Type"] = "application/json";
        // Every state-changing request carries the page's CSRF token (Flask-WTF reads it).
        init.headers["X-CSRFToken"] = csrfToken;
        init.body = JSON.stringify(body);
      }
      const response = await fetch(path, init);
      let result = null;
      try {
        result = await response.json();
      } catch (_) {
        result = null;
      }
      if (!response.ok) {
        showError((result && result.error) || "The server answered " + response.status + ".");
        return null;
      }
      return result.messages;
    } catch (_) {
      showError("Cannot reach the Voxpop server. Is it still running?");
      return null;
    } finally {
      if (blocking) setBusy(false);
    }
  }

  async function post(path, body) {
    const messages = await call(path, body);
    if (messages === null) return false;
    for (const message of messages) addBot(message);
    return true;
  }

  function from() {
    return { channel: channel.value, address: address.value.trim() };
  }

  async function sendMessage(message, payload) {
    if (busy) return;
    await loading;
    // Voxpop removes a question's buttons once it is answered, as Telegram then shows it:
    // an old question's button can no longer be tapped.
    for (const keyboard of log.querySelectorAll(".keyboard")) keyboard.remove();
    const bubble = addCitizen(message);
    const body = Object.assign(from(), { text: message });
    if (payload) body.payload = payload;
    if (!(await post("/simulator/api/send", body))) {
      bubble.append(node("p", "msg-meta msg-failed", "Not delivered"));
    }
    text.focus();
  }

  function newConversation() {
    const current = from();
    log.replaceChildren();
    addNote("New conversation on " + labelOf(current.channel) + " from " + current.address);
  }

  // Show the conversation the server carries on for this channel and address (after a page
  // reload, or on going back to an address): the server, not the page, knows where it stands.
  function showConversation() {
    loading = loadConversation();
  }

  async function loadConversation() {
    const current = from();
    const mine = ++shown;
    phone.dataset.channel = current.channel;
    title.textContent = labelOf(current.channel) + " · " + (current.address || "no address");
    address.inputMode = current.channel === "telegram" ? "numeric" : "tel";
    log.replaceChildren();
    showError("");
    if (!current.address) return newConversation();
    const query = new URLSearchParams(current);
    const messages = await call("/simulator/api/transcript?" + query.toString(), null, false);
    if (mine !== shown) return; // the channel or address changed meanwhile
    if (!messages || !messages.length) return newConversation();
    const where = labelOf(current.channel) + " from " + current.address;
    addNote("Conversation on " + where + " so far (Start over to begin anew)");
    for (const message of messages) {
      if (message.direction === "in") addCitizen(message.text);
      else addBot(message);
    }
  }

  channel.addEventListener("change", () => {
    // Keep a typed address; replace one of the defaults with the new channel's default.
    const defaults = Object.values(data.defaults);
    if (!address.value.trim() || defaults.includes(address.value.trim())) {
      address.value = data.defaults[channel.value] || "";
    }
    showConversation();
  });
  address.addEventListener("change", showConversation);

  reset.addEventListener("click", async () => {
    if (busy) return;
    await loading;
    if ((await call("/simulator/api/reset", from())) !== null) newConversation();
    text.focus();
  });

  el("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const message = text.value;
    if (!message.trim() || busy) return;
    text.value = "";
    sendMessage(message, null);
  });

  el("setup").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    if (!survey.value) {
      showError("Choose a survey to start.");
      survey.focus();
      return;
    }
    await loading;
    addNote("Started: " + survey.options[survey.selectedIndex].text);
    await post("/simulator/api/start", Object.assign(from(), { survey: survey.value }));
    text.focus();
  });

  showConversation();
})();
