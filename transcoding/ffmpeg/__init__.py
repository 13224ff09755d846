"""ffprobe/ffmpeg helpers for the HLS pipeline, with no Django imports.

Every module either builds argument lists, parses tool output, or runs one ffmpeg/ffprobe
process; services glue them to models and storage.  The flow for one video is::

    probe = probe_file(path, limits=SourceLimits(...))                  # probe + sanity: or ProbeError
    renditions = plan_renditions(probe, parse_ladder(settings.HLS_LADDER))  # ladder
    conversion = source_conversion(probe, renditions=renditions,        # filters: deinterlace, HDR -> SDR
                                   available=available_filters())
    cmd = build_hls_command(input_path=path, output_dir=tmp, probe=probe,   # commands
                            renditions=renditions, conversion=conversion)
    result = run_ffmpeg(cmd, duration=probe.duration, on_progress=..., timeout=...)   # process
    output = rewrite_master_playlist(output_dir=tmp, renditions=renditions, probe=probe)  # transcoding.hls
    run_ffmpeg(poster_command(input_path=path, output_path=tmp / "poster.jpg",
                              probe=probe, conversion=conversion), duration=probe.duration, timeout=...)

Modules: ``probe`` (ffprobe, the integrity pass and decode check, ProbeResult, ProbeError),
``sanity`` (source limits: declared size, rate, duration, bytes per second, timestamp gaps), ``ladder`` (tiers and planned
renditions), ``filters`` (deinterlacing, HDR/wide-gamut conversion, the scaling graph),
``commands`` (encoder options, the HLS and poster commands), ``previews`` (the scrubbing
preview sheets and their WebVTT track), ``loudness`` (the measuring pass and the loudness
filter), ``process`` (running ffmpeg,
TranscodeError), ``progress`` (``-progress`` parsing), ``values`` (lenient number reading).  The written files are read and
measured by ``transcoding.hls``.
"""
