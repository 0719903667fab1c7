// Source: github.com/Unitech/pm2 examples/cluster-http/ecosystem.config.js
// at commit 10241c6277ecdb200a051d78117affefd50348b3 (this comment added).
module.exports = {
  apps : [{
    name   : 'clustered_http',
    script : './http.js',
    instances : 'max',
    exec_mode : 'cluster',
    env : {
      PORT : 8002
    }
  }, {
    name : 'forked_app',
    script : './http.js',
    env : {
      PORT : 8001
    }
  }]
}
