/* The admin's "Upload videos" page: one tus-js-client upload per file, then the video's
 * processing status from the JSON APIs. Configuration comes from the #upload-config JSON. */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("upload-config").textContent);
  var input = document.getElementById("upload-input");
  var drop = document.getElementById("upload-drop");
  var table = document.getElementById("upload-table");
  var list = document.getElementById("upload-list");
  var startAll = document.getElementById("upload-start-all");
  var previousBox = document.getElementById("upload-previous");
  var previousList = document.getElementById("upload-previous-list");
  var rows = [];
  var POLL_MS = 1500;
  var SPEED_WINDOW_MS = 5000;

  function withId(template, id) { return template.replace(config.placeholder, id); }

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
  }

  function formatSeconds(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  }

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  /* The server's rules (uploads.services.admission: upload_format_check / upload_length_check), checked before sending. */
  function refusal(file) {
    var allowed = config.allowedFormats.join(", ");
    var ext = extensionOf(file.name);
    if (!ext) { return "file name " + file.name + " has no extension; upload a video file (" + allowed + ")"; }
    if (config.allowedFormats.indexOf(ext) === -1) { return "'." + ext + "' files are not accepted; upload one of: " + allowed; }
    if (file.type && file.type.indexOf("video/") !== 0 && file.type !== "application/octet-stream") {
      return "file type " + file.type + " is not a video; upload one of: " + allowed;
    }
    if (file.size > config.maxBytes) {
      return "file is " + formatBytes(file.size) + ", over the " + config.maxSizeMb + " MB limit";
    }
    if (file.size === 0) { return "file is empty"; }
    return null;
  }

  /* The message the server gave (JSON {"detail"}), else what tus-js-client knows. */
  function serverMessage(error) {
    var response = error && error.originalResponse;
    if (response) {
      var body = response.getBody();
      try {
        var detail = JSON.parse(body).detail;
        if (detail) { return detail; }
      } catch (ignored) { /* not JSON: fall through to the status */ }
      return "the server answered " + response.getStatus() + (body ? ": " + body.slice(0, 200) : "");
    }
    return error && error.message ? error.message : String(error);
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function button(label, className, handler) {
    var node = element("button", "button " + (className || ""), label);
    node.type = "button";
    node.addEventListener("click", handler);
    return node;
  }

  function Row(file) {
    this.file = file;
    this.upload = null;
    this.state = "pending";
    this.samples = [];
    this.build();
  }

  Row.prototype.build = function () {
    var tr = element("tr", "upload-row");
    var fileCell = element("td", "upload-file");
    fileCell.appendChild(element("div", "upload-name", this.file.name));
    fileCell.appendChild(element("div", "upload-size", formatBytes(this.file.size)));
    this.titleInput = element("input", "vTextField upload-title");
    this.titleInput.type = "text";
    this.titleInput.maxLength = 255;
    this.titleInput.value = this.file.name;
    this.titleInput.setAttribute("aria-label", "Title of " + this.file.name);
    var titleCell = element("td");
    titleCell.appendChild(this.titleInput);
    var progressCell = element("td", "upload-progress-cell");
    this.bar = element("progress", "upload-bar");
    this.bar.max = 100;
    this.bar.value = 0;
    this.percent = element("span", "upload-percent", "0%");
    this.rate = element("div", "upload-rate");
    progressCell.appendChild(this.bar);
    progressCell.appendChild(this.percent);
    progressCell.appendChild(this.rate);
    this.statusCell = element("td", "upload-status");
    this.message = element("span", "upload-message", "Ready to upload");
    this.statusCell.appendChild(this.message);
    this.controls = element("td", "upload-controls");
    this.startButton = button("Upload", "default", this.start.bind(this));
    this.pauseButton = button("Pause", "", this.togglePause.bind(this));
    this.cancelButton = button("Cancel", "", this.cancel.bind(this));
    this.pauseButton.hidden = true;
    this.controls.appendChild(this.startButton);
    this.controls.appendChild(this.pauseButton);
    this.controls.appendChild(this.cancelButton);
    [fileCell, titleCell, progressCell, this.statusCell, this.controls].forEach(function (cell) { tr.appendChild(cell); });
    this.tr = tr;
    var problem = refusal(this.file);
    if (problem) { this.refuse(problem); }
  };

  Row.prototype.setState = function (state, text) {
    this.state = state;
    this.tr.dataset.state = state;
    this.message.textContent = text;
    this.message.className = "upload-message upload-message-" + state;
  };

  Row.prototype.refuse = function (text) {
    this.setState("refused", "Refused: " + text);
    this.startButton.hidden = true;
    this.pauseButton.hidden = true;
    this.cancelButton.textContent = "Remove";
    this.titleInput.disabled = true;
  };

  Row.prototype.start = function () {
    if (this.state !== "pending") { return; }
    var row = this;
    this.titleInput.disabled = true;
    this.startButton.hidden = true;
    this.pauseButton.hidden = false;
    this.setState("uploading", "Starting…");
    this.upload = new window.tus.Upload(this.file, {
      endpoint: config.endpoint,
      chunkSize: config.chunkSize,
      retryDelays: config.retryDelays,
      headers: { "X-CSRFToken": config.csrfToken },
      metadata: {
        filename: this.file.name,
        filetype: this.file.type || "application/octet-stream",
        title: this.titleInput.value.trim() || this.file.name
      },
      // The same file picked again by the same user resumes its stored upload.
      fingerprint: function (file) {
        return Promise.resolve(["unpuzzle", config.userId, file.name, file.type, file.size, file.lastModified, config.endpoint].join("-"));
      },
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) { row.progress(sent, total); },
      onSuccess: function () { row.uploaded(); },
      onError: function (error) { row.failed(error); },
      onShouldRetry: function (error) {
        var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        // Offline: wait for the "online" event instead of spending the retries.
        if (!navigator.onLine) { return false; }
        return status === 0 || status >= 500 || status === 409 || status === 423;
      }
    });
    this.upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        row.upload.resumeFromPreviousUpload(previous[0]);
        row.setState("uploading", "Resuming an earlier upload of this file…");
        row.resumed = true;
      }
      row.upload.start();
    });
  };

  Row.prototype.progress = function (sent, total) {
    var now = Date.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) { this.samples.shift(); }
    var pct = total ? Math.floor((sent / total) * 100) : 0;
    this.bar.value = pct;
    this.percent.textContent = pct + "%";
    var first = this.samples[0];
    var elapsed = (now - first[0]) / 1000;
    if (elapsed > 0.2 && sent > first[1]) {
      var speed = (sent - first[1]) / elapsed;
      this.rate.textContent = formatBytes(speed) + "/s, " + formatSeconds((total - sent) / speed) + " left";
    }
    if (this.state === "uploading" || this.state === "offline") {
      this.setState("uploading", "Uploading " + formatBytes(sent) + " of " + formatBytes(total) + (this.resumed ? " (resumed)" : ""));
    }
  };

  Row.prototype.togglePause = function () {
    var row = this;
    if (this.state === "uploading" || this.state === "offline") {
      this.upload.abort().then(function () {
        row.setState("paused", "Paused");
        row.pauseButton.textContent = "Resume";
        row.samples = [];
      });
    } else if (this.state === "paused" || this.state === "error") {
      this.pauseButton.textContent = "Pause";
      this.setState("uploading", "Resuming…");
      this.upload.start();
    }
  };

  Row.prototype.cancel = function () {
    var row = this;
    var done = function () {
      row.tr.remove();
      rows.splice(rows.indexOf(row), 1);
      refreshToolbar();
    };
    if (this.upload && ["uploading", "paused", "offline", "error"].indexOf(this.state) !== -1) {
      this.setState("cancelling", "Cancelling…");
      // abort(true) stops the transfer and terminates the upload on the server (DELETE).
      this.upload.abort(true).then(done, function (error) {
        row.setState("error", "Could not cancel: " + serverMessage(error));
      });
    } else if (this.state !== "following" && this.state !== "done") {
      done();
    }
  };

  Row.prototype.failed = function (error) {
    if (!navigator.onLine) {
      this.setState("offline", "Offline: the upload continues when the connection returns");
      return;
    }
    var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
    if (status >= 400 && status < 500 && !this.upload.url) {
      this.refuse(serverMessage(error));
      return;
    }
    this.setState("error", "Upload stopped: " + serverMessage(error));
    this.pauseButton.textContent = "Resume";
  };

  Row.prototype.uploaded = function () {
    this.bar.value = 100;
    this.percent.textContent = "100%";
    this.rate.textContent = "";
    this.pauseButton.hidden = true;
    this.cancelButton.hidden = true;
    this.uploadId = this.upload.url.replace(/\/+$/, "").split("/").pop();
    this.setState("following", "Uploaded; checking the file…");
    this.poll();
  };

  Row.prototype.poll = function () {
    var row = this;
    var target = this.videoId ? withId(config.videoApiUrl, this.videoId) : withId(config.uploadUrl, this.uploadId);
    fetch(target, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status + " from " + target); }
        return response.json();
      })
      .then(function (data) {
        if (row.videoId) { row.showVideo(data); } else { row.showUpload(data); }
      })
      .catch(function (error) {
        row.setState("following", "Waiting for the server (" + error.message + ")");
        row.schedulePoll();
      });
  };

  Row.prototype.schedulePoll = function () {
    window.setTimeout(this.poll.bind(this), POLL_MS);
  };

  Row.prototype.showUpload = function (data) {
    if (data.status === "failed") {
      this.finish("failed", "Failed: " + (data.error || "the file was refused"));
    } else if (data.video_id) {
      this.videoId = data.video_id;
      this.setState("following", "Queued");
      this.poll();
    } else {
      this.setState("following", data.error ? "Checking the file (" + data.error + ")" : "Checking the file…");
      this.schedulePoll();
    }
  };

  Row.prototype.showVideo = function (video) {
    this.tr.dataset.videoId = video.id;
    this.tr.dataset.videoStatus = video.status;
    if (video.status === "ready") {
      this.finish("ready", video.duplicate_of
        ? "Ready (same file as \u201c" + video.duplicate_of_title + "\u201d: no new processing) \u00b7 "
        : "Ready: ");
      this.tr.dataset.duplicateOf = video.duplicate_of || "";
      var watch = element("a", "upload-watch", "watch");
      watch.href = withId(config.playerUrl, video.id);
      var edit = element("a", "upload-edit", "edit");
      edit.href = withId(config.changeUrl, video.id);
      this.message.appendChild(watch);
      this.message.appendChild(document.createTextNode(" · "));
      this.message.appendChild(edit);
      return;
    }
    if (video.status === "failed") {
      this.finish("failed", "Failed: " + (video.status_reason || "transcoding failed"));
      return;
    }
    var text = {
      uploaded: "Uploaded",
      queued: video.duplicate_of
        ? "Waiting for \u201c" + video.duplicate_of_title + "\u201d (same file) to finish processing"
        : "Queued for transcoding",
      processing: "Processing " + (video.progress || 0) + "%",
      blocked: "Blocked: " + (video.status_reason || "spending is stopped")
    }[video.status] || video.status;
    this.setState("following", text);
    this.schedulePoll();
  };

  Row.prototype.finish = function (state, text) {
    this.setState(state === "ready" ? "done" : "failed", text);
    this.tr.dataset.final = state;
  };

  function refreshToolbar() {
    table.hidden = rows.length === 0;
    startAll.disabled = !rows.some(function (row) { return row.state === "pending"; });
  }

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) {
      var row = new Row(file);
      rows.push(row);
      list.appendChild(row.tr);
    });
    refreshToolbar();
  }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("upload-drop-over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("upload-drop-over"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) { addFiles(event.dataTransfer.files); }
  });
  startAll.addEventListener("click", function () {
    rows.forEach(function (row) { row.start(); });
    refreshToolbar();
  });
  window.addEventListener("online", function () {
    rows.forEach(function (row) {
      if (row.state === "offline") {
        row.setState("uploading", "Back online: resuming…");
        row.upload.start();
      }
    });
  });
  window.addEventListener("beforeunload", function (event) {
    if (rows.some(function (row) { return row.state === "uploading"; })) { event.preventDefault(); }
  });

  /* Uploads this browser started and did not finish: picking the same file resumes them. */
  window.tus.defaultOptions.urlStorage.findAllUploads().then(function (uploads) {
    var mine = uploads.filter(function (upload) { return upload.urlStorageKey.indexOf("unpuzzle-" + config.userId + "-") !== -1; });
    mine.forEach(function (upload) {
      var item = element("li", "", (upload.metadata.filename || "file") + " (" + formatBytes(upload.size) + "), started " +
        new Date(upload.creationTime).toLocaleString() + ": add the same file to resume. ");
      item.appendChild(button("Forget", "", function () {
        window.tus.defaultOptions.urlStorage.removeUpload(upload.urlStorageKey).then(function () {
          item.remove();
          previousBox.hidden = previousList.children.length === 0;
        });
      }));
      previousList.appendChild(item);
    });
    previousBox.hidden = mine.length === 0;
  });
})();
