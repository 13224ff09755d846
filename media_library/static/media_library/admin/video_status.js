/* Video admin: rows not in a final state poll the video API and update their status badge,
 * job progress (with its attempt) and rendition count in place, without reloading the page;
 * "Copy link" buttons copy the player page's address. */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var COPIED_SHOWN_MS = 4000;
  var FINAL = { ready: true, failed: true };

  // Same text as the job column the server renders (transcoding.admin.VideoAdmin._job_text).
  function jobText(video) {
    if (!video.job_status) { return "-"; }
    if (video.job_status === "running") {
      return "running " + (video.progress || 0) + "% (attempt " + (video.job_attempts || 1) + ")";
    }
    if ((video.job_status === "failed" || video.job_status === "cancelled") && video.status_reason) {
      return video.job_status + ": " + video.status_reason.slice(0, 120);
    }
    return video.job_status;
  }

  function follow(badge) {
    var url = badge.dataset.pollUrl;
    var id = badge.dataset.videoId;
    var job = document.querySelector('.video-job[data-video-id="' + id + '"]');
    var renditions = document.querySelector('.video-renditions[data-video-id="' + id + '"]');
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (video) {
          if (!video) { return; }
          badge.className = "video-status video-status-" + video.status;
          badge.textContent = video.status.charAt(0).toUpperCase() + video.status.slice(1);
          badge.title = video.status_reason || "";
          if (job) { job.textContent = jobText(video); }
          if (renditions) { renditions.textContent = String((video.renditions || []).length); }
          if (!FINAL[video.status]) { window.setTimeout(tick, POLL_MS); }
        })
        .catch(function () { window.setTimeout(tick, POLL_MS * 5); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  function say(status, text) {
    status.textContent = text;
    window.clearTimeout(status.clearTimer);
    status.clearTimer = window.setTimeout(function () { status.textContent = ""; }, COPIED_SHOWN_MS);
  }

  // Without the clipboard API (plain http away from localhost): show the address selected for Ctrl+C.
  function copyByHand(button, status, url) {
    var shown = button.parentNode.querySelector(".video-copy-url");
    if (!shown) {
      shown = document.createElement("span");
      shown.className = "video-copy-url";
      status.parentNode.insertBefore(shown, status.nextSibling);
    }
    shown.textContent = url;
    var range = document.createRange();
    range.selectNodeContents(shown);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    say(status, copied ? "Copied" : "Press Ctrl+C to copy");
  }

  function copyLink(button) {
    var status = button.parentNode.querySelector(".video-copy-status");
    var url = new URL(button.dataset.url, window.location.href).href;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(
        function () { say(status, "Copied"); },
        function () { copyByHand(button, status, url); }
      );
    } else {
      copyByHand(button, status, url);
    }
  }

  // Inline tables scroll sideways on a phone: such a region takes keyboard focus, named by its heading.
  function focusableScrollRegions() {
    document.querySelectorAll(".inline-group").forEach(function (group) {
      if (group.scrollWidth > group.clientWidth) {
        var heading = group.querySelector("h2");
        group.tabIndex = 0;
        group.setAttribute("role", "region");
        group.setAttribute("aria-label", heading ? heading.textContent.trim() : "Table");
      } else if (group.getAttribute("role") === "region") {
        group.removeAttribute("tabindex");
        group.removeAttribute("role");
        group.removeAttribute("aria-label");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusableScrollRegions();
    window.addEventListener("resize", focusableScrollRegions);
    document.querySelectorAll(".video-status[data-poll-url]").forEach(function (badge) {
      if (badge.dataset.pollUrl) { follow(badge); }
    });
    document.querySelectorAll("button.video-copy-link").forEach(function (button) {
      button.addEventListener("click", function () { copyLink(button); });
    });
  });
})();
