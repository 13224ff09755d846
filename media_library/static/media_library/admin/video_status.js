/* Video admin list: rows not in a final state poll the video API and update their status
 * badge and job progress in place, without reloading the page. */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { ready: true, failed: true };

  function jobText(video) {
    if (!video.job_status) { return "-"; }
    if (video.job_status === "running") { return "running " + (video.progress || 0) + "%"; }
    if ((video.job_status === "failed" || video.job_status === "cancelled") && video.status_reason) {
      return video.job_status + ": " + video.status_reason.slice(0, 120);
    }
    return video.job_status;
  }

  function follow(badge) {
    var url = badge.dataset.pollUrl;
    var job = document.querySelector('.video-job[data-video-id="' + badge.dataset.videoId + '"]');
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (video) {
          if (!video) { return; }
          badge.className = "video-status video-status-" + video.status;
          badge.textContent = video.status.charAt(0).toUpperCase() + video.status.slice(1);
          badge.title = video.status_reason || "";
          if (job) { job.textContent = jobText(video); }
          if (!FINAL[video.status]) { window.setTimeout(tick, POLL_MS); }
        })
        .catch(function () { window.setTimeout(tick, POLL_MS * 5); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".video-status[data-poll-url]").forEach(function (badge) {
      if (badge.dataset.pollUrl) { follow(badge); }
    });
  });
})();
