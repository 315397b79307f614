// Keyboard and composer conveniences for the console. Every flow also works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // What the console says, in the viewer's language (base.html writes it): "%s" stands for a number or a name.
  var wordsBlock = document.getElementById("console-words");
  var words = wordsBlock ? JSON.parse(wordsBlock.textContent) : {};
  function say(text, value) { return String(text || "").replace("%s", value); }

  function isTyping(element) {
    return element instanceof Element && element.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function updateCounter(textarea) {
    var counter = document.getElementById(textarea.id + "-counter");
    if (counter) counter.textContent = textarea.value.length + " / " + textarea.maxLength;
  }

  function updateCounters() {
    document.querySelectorAll("textarea[data-counter]").forEach(updateCounter);
  }

  function moveSelection(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("[data-inbox-row]"));
    if (rows.length === 0) return;
    var index = rows.indexOf(document.activeElement);
    var next = rows[Math.min(rows.length - 1, Math.max(0, index === -1 ? 0 : index + step))];
    next.focus();
  }

  function click(selector) {
    var elements = document.querySelectorAll(selector);
    if (elements.length === 0) return false;
    elements[elements.length - 1].click();
    return true;
  }

  // Quick replies: "/" plus a few letters filters the list; Enter or a click inserts the text.
  function picker(textarea) {
    return document.getElementById(textarea.getAttribute("data-quick-replies"));
  }

  function pickerOptions(list) {
    return Array.prototype.filter.call(list.children, function (option) { return !option.hidden; });
  }

  function showPicker(textarea, list, visible) {
    list.hidden = !visible;
    textarea.setAttribute("aria-expanded", visible ? "true" : "false");
  }

  function highlight(textarea, option) {
    option.setAttribute("aria-selected", "true");
    textarea.setAttribute("aria-activedescendant", option.id);
  }

  function filterPicker(textarea) {
    var list = picker(textarea);
    if (!list) return;
    var match = /^\/([\w-]*)$/.exec(textarea.value);
    if (!match) { showPicker(textarea, list, false); return; }
    var visible = 0;
    Array.prototype.forEach.call(list.children, function (option) {
      option.hidden = option.getAttribute("data-shortcut").indexOf(match[1].toLowerCase()) === -1;
      option.setAttribute("aria-selected", "false");
      if (!option.hidden) visible += 1;
    });
    showPicker(textarea, list, visible > 0);
    if (visible) highlight(textarea, pickerOptions(list)[0]);
  }

  function movePicker(textarea, list, step) {
    var options = pickerOptions(list);
    var index = options.findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
    if (index !== -1) options[index].setAttribute("aria-selected", "false");
    highlight(textarea, options[(index + step + options.length) % options.length]);
  }

  function insertQuickReply(textarea, option) {
    textarea.value = option.getAttribute("data-body");
    showPicker(textarea, picker(textarea), false);
    updateCounter(textarea);
    storeDraft(textarea);
    textarea.focus();
  }

  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest(".quick-replies [role=option]");
    if (!option) return;
    var textarea = document.querySelector("[data-quick-replies='" + option.parentElement.id + "']");
    if (textarea) insertQuickReply(textarea, option);
  });

  // Drafts survive a reload and a session that ended mid-sentence: kept in this browser, per agent and
  // conversation, until the server says the reply went out (data-sent on the composer it sends back).
  function storeDraft(textarea) {
    var form = textarea.form;
    if (!form || !form.dataset.draftKey) return;
    try {
      if (textarea.value.trim()) localStorage.setItem(form.dataset.draftKey, textarea.value);
      else localStorage.removeItem(form.dataset.draftKey);
    } catch (error) { /* storage full or disabled: the draft just is not kept */ }
  }

  function restoreDraft() {
    var form = document.getElementById("composer");
    if (!form || !form.dataset.draftKey) return;
    var textarea = form.querySelector("textarea[name=message]");
    try {
      if (form.hasAttribute("data-sent")) {
        localStorage.removeItem(form.dataset.draftKey);
      } else if (textarea && !textarea.value) {
        textarea.value = localStorage.getItem(form.dataset.draftKey) || "";
        updateCounter(textarea);
      }
    } catch (error) { /* no storage: nothing to restore */ }
  }

  document.addEventListener("input", function (event) {
    if (!event.target.matches) return;
    if (event.target.matches("textarea[data-counter]")) updateCounter(event.target);
    if (event.target.matches("textarea[data-quick-replies]")) filterPicker(event.target);
    if (event.target.matches("#composer textarea[name=message]")) storeDraft(event.target);
  });

  // The reply shows as "Sending…" at once; the server's answer replaces the whole panel. It lives in the
  // composer, not the thread, because the thread's poll would wipe it while Vambe is still answering.
  document.addEventListener("htmx:before:request", function (event) {
    var form = event.detail && event.detail.ctx && event.detail.ctx.sourceElement;
    if (!form || form.id !== "composer") return;
    var text = form.querySelector("textarea[name=message]").value;
    var thread = document.getElementById("pending-sends");
    if (!text.trim() || !thread) return;
    var item = document.createElement("li");
    item.className = "message message-outbound pending";
    var body = document.createElement("p");
    body.className = "message-body";
    body.textContent = text;
    var state = document.createElement("div");
    state.className = "message-footer";
    var sending = document.createElement("span");
    sending.className = "outcome outcome-sending";
    sending.textContent = words.sending;
    state.appendChild(sending);
    item.appendChild(body);
    item.appendChild(state);
    thread.appendChild(item);
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var list = target.matches && target.matches("textarea[data-quick-replies]") ? picker(target) : null;
    if (list && !list.hidden) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        movePicker(target, list, event.key === "ArrowDown" ? 1 : -1);
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        var selected = list.querySelector("[aria-selected=true]");
        if (selected) { event.preventDefault(); insertQuickReply(target, selected); return; }
      }
      if (event.key === "Escape") { showPicker(target, list, false); event.preventDefault(); return; }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && target.matches && target.matches("textarea[data-enter-sends]")) {
      event.preventDefault();
      target.form.requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      var help = document.getElementById("keyboard-help");
      if (help && help.open) return;  // the dialog closes itself
      // First Esc removes the quote; with none, it leaves the message box so that shortcuts work.
      if (!click("[data-remove-quote]") && isTyping(target)) target.blur();
      return;
    }
    if (isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) return;
    var handled = true;
    switch (event.key) {
      case "j": moveSelection(1); break;
      case "k": moveSelection(-1); break;
      case "/":
        var search = document.querySelector("[data-search]");
        if (search) search.focus(); else handled = false;
        break;
      case "r": handled = click("[data-reply-to-customer]"); break;
      case "t": handled = click("[data-take-next]:not([disabled])"); break;
      case "?":
        var dialog = document.getElementById("keyboard-help");
        if (dialog) dialog.showModal(); else handled = false;
        break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  // Who needs a human: a rise in the header's counts is read out (polite live region) and, once the agent has
  // allowed it with a click, shown as a browser notification.
  var shownAlerts = null;

  // Each announcement is a new line of the polite live region (read once); only the last few are kept.
  function announce(text) {
    var announcer = document.getElementById("announcer");
    if (!announcer) return;
    var line = document.createElement("p");
    line.textContent = text;
    announcer.appendChild(line);
    while (announcer.children.length > 3) announcer.removeChild(announcer.firstChild);
  }

  function notify(text, url) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    var notification = new Notification("Handoff", { body: text, tag: "handoff-alerts" });
    notification.onclick = function () { window.focus(); window.location.href = url; };
  }

  function checkAlerts() {
    var alerts = document.getElementById("alerts");
    if (!alerts || !alerts.hasAttribute("data-waiting")) return;
    var now = {
      waiting: +alerts.getAttribute("data-waiting"),
      closing: +alerts.getAttribute("data-closing"),
      failed: +alerts.getAttribute("data-late-failures")
    };
    var button = alerts.querySelector("[data-enable-notifications]");
    if (button) button.hidden = !("Notification" in window) || Notification.permission !== "default";
    if (shownAlerts) {
      var news = [];
      if (now.waiting > shownAlerts.waiting) news.push(say(words.waiting, now.waiting));
      if (now.closing > shownAlerts.closing) news.push(say(words.closing, now.closing));
      if (now.failed > shownAlerts.failed) news.push(say(words.failed, now.failed));
      if (news.length) {
        announce(news.join(", ") + ".");
        notify(news.join(", ") + ".", alerts.getAttribute("data-waiting-url"));
      }
    }
    shownAlerts = now;
  }

  // A new customer message is read out too: in the open conversation, or as a newly unread row of the inbox.
  var shownInbound = null;
  var shownUnread = null;

  function checkInbox() {
    var list = document.getElementById("conversation-list");
    if (!list) return;
    var unread = list.querySelectorAll(".conversation-row.unread");
    var seen = {};
    Array.prototype.forEach.call(unread, function (row) { seen[row.id] = row.getAttribute("data-customer-wrote"); });
    if (shownUnread !== null) {
      var fresh = Array.prototype.filter.call(unread, function (row) { return shownUnread[row.id] !== seen[row.id]; });
      if (fresh.length) {
        var name = fresh[0].querySelector(".conversation-name");
        var who = name ? name.textContent.replace("●", "").replace(words.unread, "").trim() : words.a_customer;
        announce(say(words.new_message, who));
      }
    }
    shownUnread = seen;
  }

  function checkThread() {
    var thread = document.getElementById("thread");
    if (!thread) return;
    var inbound = thread.querySelectorAll(".message-inbound");
    if (shownInbound !== null && inbound.length > shownInbound) {
      var title = document.getElementById("conversation-title");
      announce(say(words.new_message, title ? title.textContent.trim() : words.the_customer));
    }
    shownInbound = inbound.length;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-enable-notifications]");
    if (!button || !("Notification" in window)) return;
    Notification.requestPermission().then(checkAlerts);
  });

  // A template's preview follows the values typed for its placeholders.
  function fillSlots(input) {
    var number = input.getAttribute("data-template-value");
    input.form.querySelectorAll('[data-slot="' + number + '"]').forEach(function (slot) {
      slot.textContent = input.value.trim() || "{{" + number + "}}";
    });
  }

  function fillPreviews() {
    document.querySelectorAll("[data-template-value]").forEach(fillSlots);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-template-value]")) fillSlots(event.target);
  });
  document.addEventListener("htmx:after:swap", fillPreviews);
  document.addEventListener("DOMContentLoaded", fillPreviews);

  document.addEventListener("htmx:after:swap", checkAlerts);
  document.addEventListener("htmx:after:swap", checkThread);
  document.addEventListener("DOMContentLoaded", checkThread);
  document.addEventListener("htmx:after:swap", checkInbox);
  document.addEventListener("DOMContentLoaded", checkInbox);
  document.addEventListener("htmx:after:swap", updateCounters);
  document.addEventListener("htmx:after:swap", restoreDraft);
  document.addEventListener("DOMContentLoaded", updateCounters);
  document.addEventListener("DOMContentLoaded", restoreDraft);
})();
