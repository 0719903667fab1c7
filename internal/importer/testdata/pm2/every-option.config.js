// Written for paddock's tests: every PM2 option the importer maps, and some
// it only comments, with the value kinds PM2 accepts.
const path = require('path');
module.exports = {
  apps: [{
    name: 'API server',
    script: 'server.js',
    cwd: path.join(__dirname, 'srv'),
    args: '--port 8000 --mode "fast lane"',
    node_args: ['--max-old-space-size=256'],
    interpreter_args: '--enable-source-maps',
    instances: -1,
    exec_mode: 'cluster',
    env: { NODE_ENV: 'development', WORKERS: 4, DEBUG: false },
    env_production: { NODE_ENV: 'production' },
    env_staging: { NODE_ENV: 'staging' },
    autorestart: true,
    stop_exit_codes: [0],
    min_uptime: 2000,
    exp_backoff_restart_delay: 100,
    restart_delay: 3000,
    max_restarts: 10,
    kill_timeout: 8000,
    listen_timeout: 50,
    wait_ready: true,
    shutdown_with_message: true,
    max_memory_restart: '1G',
    watch: ['src'],
    ignore_watch: ['node_modules'],
    cron_restart: '0 3 * * *',
    out_file: '/var/log/api/out.log',
    error_file: '/var/log/api/err.log',
    log_date_format: 'YYYY-MM-DD HH:mm Z',
    merge_logs: true,
    pid_file: '/var/run/api.pid',
    user: 'www-data',
    gid: 'www-data',
    instance_var: 'INSTANCE_ID',
    namespace: 'web',
    source_map_support: true,
    treekill: false,
    some_future_option: 'x'
  }, {
    script: 'jobs/cron.py',
    instances: '3',
    exec_mode: 'fork',
    autorestart: false,
    kill_timeout: '10s',
    log_file: 'logs/jobs.log',
    out_file: 'logs/out.log',
    port: 9000,
    autostart: false
  }, {
    name: 'bin',
    script: 'ls',
    args: ['-la', 8000, '$HOME | wc'],
    interpreter: 'none',
    out_file: '/dev/null',
    error_file: '/dev/null',
    restart_delay: 0,
    uid: 1000
  }],
  deploy: { production: { user: 'node' } }
};
