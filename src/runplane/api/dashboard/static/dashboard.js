/* runplane dashboard: periodic refresh of page regions, the live log, small helpers.
   No inline script anywhere (the CSP forbids it): pages pass data in data- attributes. */
(function () {
  "use strict";

  // ---- regions with data-refresh-url: replaced by a fresh server-rendered partial ----

  function fetchInto(region) {
    var url = region.getAttribute("data-refresh-url");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("refresh failed: " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        region.innerHTML = html;
        var done = region.querySelector("[data-terminal='yes']");
        if (done) {
          stopTimer(region);
        }
      });
  }

  function stopTimer(region) {
    if (region._timer) {
      window.clearInterval(region._timer);
      region._timer = null;
    }
  }

  function startTimer(region) {
    var seconds = parseFloat(region.getAttribute("data-refresh-seconds"));
    if (!(seconds > 0)) {
      return;
    }
    region._timer = window.setInterval(function () {
      // Never pull the page from under someone reading or using it.
      if (region.getAttribute("data-paused") === "yes" || region.contains(document.activeElement)) {
        return;
      }
      if (document.visibilityState === "hidden") {
        return;
      }
      fetchInto(region).catch(function () {
        stopTimer(region);
      });
    }, seconds * 1000);
  }

  function setUpToggle(button) {
    var region = document.getElementById(button.getAttribute("data-refresh-toggle"));
    if (!region) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var paused = region.getAttribute("data-paused") === "yes";
      region.setAttribute("data-paused", paused ? "no" : "yes");
      button.setAttribute("aria-pressed", paused ? "false" : "true");
      button.textContent = paused ? "Pause auto-refresh" : "Resume auto-refresh";
    });
  }

  // ---- the live log: an EventSource that appends to a <pre> ----

  function followLog(pre) {
    var state = document.getElementById("log-state");
    var say = function (text) {
      if (state) {
        state.textContent = text;
      }
    };
    if (!window.EventSource) {
      say("This browser cannot follow the log live; use the plain-text log.");
      return;
    }
    var text = document.createTextNode("");
    pre.appendChild(text);
    var source = new EventSource(pre.getAttribute("data-stream-url"));
    say("Connecting to the log…");
    source.addEventListener("open", function () {
      say("Following the log live.");
    });
    source.addEventListener("log", function (event) {
      var data = JSON.parse(event.data);
      var atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      text.appendData(data.text);
      if (atBottom) {
        pre.scrollTop = pre.scrollHeight;
      }
    });
    source.addEventListener("end", function (event) {
      source.close();
      var data = JSON.parse(event.data);
      say("The run is over (" + data.status.replace("_", " ") + "); the log is complete.");
      if (pre.getAttribute("data-was-terminal") === "yes") {
        return;
      }
      (pre.getAttribute("data-refresh-on-end") || "").split(" ").forEach(function (id) {
        var region = id && document.getElementById(id);
        if (region) {
          stopTimer(region);
          fetchInto(region).catch(function () {});
        }
      });
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        say("The log stream stopped; reload the page to follow it again.");
      } else {
        say("Reconnecting to the log…");
      }
    });
  }

  // ---- small helpers ----

  function setUpCopy(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "Copied";
      });
    });
  }

  function confirmSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(startTimer);
    document.querySelectorAll("[data-refresh-toggle]").forEach(setUpToggle);
    document.querySelectorAll("pre[data-stream-url]").forEach(followLog);
    document.querySelectorAll("[data-copy]").forEach(setUpCopy);
    // Delegated: forms inside refreshed regions are replaced, the listener stays.
    document.addEventListener("submit", confirmSubmit);
  });
})();
