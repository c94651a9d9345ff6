// Tally's pages: keep the balances current from the server's events (no reloads), and say
// whether the page is live. Shipped inside the binary; no inline script anywhere.
"use strict";

(function () {
  const live = document.getElementById("live");
  const balances = document.querySelectorAll("td.balance[data-key]");
  if (balances.length === 0 || typeof EventSource === "undefined") {
    return;
  }
  const events = new EventSource("/events");
  events.addEventListener("open", function () {
    if (live) {
      live.textContent = "live";
      live.className = "live on";
    }
  });
  events.addEventListener("error", function () {
    if (live) {
      live.textContent = "reconnecting…";
      live.className = "live off";
    }
  });
  events.addEventListener("accounts", function (message) {
    let view;
    try {
      view = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    for (const account of view.accounts) {
      const key = account.network + ":" + account.account;
      const balance = document.querySelector('td.balance[data-key="' + key + '"]');
      if (balance && balance.textContent !== account.balance_cash) {
        balance.textContent = account.balance_cash;
        balance.classList.add("changed");
        setTimeout(function () { balance.classList.remove("changed"); }, 1500);
      }
      const agree = document.querySelector('td.agree[data-key="' + key + '"]');
      if (agree) {
        agree.textContent = account.error
          ? account.error
          : account.agree + " of " + account.validators + " (quorum " + account.quorum + ")";
      }
    }
  });
})();

// A coin file dropped on the import box is read into it (nothing leaves the page until
// the form is sent).
(function () {
  for (const box of document.querySelectorAll("textarea.import-coins")) {
    box.addEventListener("dragover", function (event) {
      event.preventDefault();
    });
    box.addEventListener("drop", function (event) {
      event.preventDefault();
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (!file) {
        return;
      }
      const reader = new FileReader();
      reader.onload = function () {
        box.value = String(reader.result);
      };
      reader.readAsText(file);
    });
  }
})();

// A live transfer's page: its steps, notes and outcome arrive as they happen.
(function () {
  const transfer = document.getElementById("transfer");
  if (!transfer || typeof EventSource === "undefined") {
    return;
  }
  const events = new EventSource("/live/" + transfer.dataset.id + "/events");
  const fill = function (list, items, render) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    for (const item of items) {
      const li = document.createElement("li");
      render(li, item);
      list.appendChild(li);
    }
  };
  events.addEventListener("transfer", function (message) {
    let view;
    try {
      view = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    fill(document.getElementById("steps"), view.steps, function (li, step) {
      li.value = step.number;
      li.textContent = step.name;
    });
    fill(document.getElementById("notes"), view.notes, function (li, note) {
      li.textContent = note;
    });
    if (view.connection) {
      document.getElementById("connection").textContent = view.connection;
      // The QR code is SVG this server drew from the file's text.
      document.getElementById("connection-qr").innerHTML = view.connection_qr || "";
      document.getElementById("connection-section").hidden = false;
    }
    const outcome = document.getElementById("live-outcome");
    outcome.textContent = view.outcome || "running…";
    outcome.className = view.ok === true ? "ok" : view.ok === false ? "error" : "";
    if (view.ok !== null && view.ok !== undefined) {
      events.close();
    }
  });
})();

// The explorer: the validators and the payments chart, redrawn every second.
(function () {
  const live = document.getElementById("explorer-live");
  if (!live || typeof EventSource === "undefined") {
    return;
  }
  const events = new EventSource("/explorer/events?network=" + live.dataset.network);
  events.addEventListener("explorer", function (message) {
    try {
      // HTML this server escaped and drew (the validators table and an SVG chart).
      live.innerHTML = JSON.parse(message.data).html;
    } catch (e) {
      // A broken event changes nothing on the page.
    }
  });
})();

// A wire's page: its steps, outcome and receipt arrive as they happen.
(function () {
  const live = document.getElementById("wire-live");
  if (!live || typeof EventSource === "undefined") {
    return;
  }
  const events = new EventSource("/wire/" + live.dataset.id + "/events");
  events.addEventListener("wire", function (message) {
    try {
      // HTML this server escaped: the steps, the outcome and the receipt.
      live.innerHTML = JSON.parse(message.data).html;
    } catch (e) {
      // A broken event changes nothing on the page.
    }
  });
})();
