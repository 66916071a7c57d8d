-- Headless Neovim (0.7 or later) drives the rust_lsp server with its own LSP client:
-- open a file of the fixture, go to a definition, break an import and wait for the
-- diagnostic, fix it and wait for it to clear, hover. Each check writes one line,
-- `ok NAME` or `FAIL NAME: why`, to $CHUNKDB_LSP_OUT; the Rust test reads them.
local server = os.getenv('CHUNKDB_LSP_SERVER')
local root = os.getenv('CHUNKDB_LSP_ROOT')
local out = os.getenv('CHUNKDB_LSP_OUT')
local lines = {}

local function check(name, ok, why)
  table.insert(lines, (ok and 'ok ' or 'FAIL ') .. name .. ((not ok and why) and (': ' .. why) or ''))
  return ok
end

local function finish()
  local file = io.open(out, 'w')
  file:write(table.concat(lines, '\n') .. '\n')
  file:close()
  vim.cmd('qa!')
end

-- The cursor on the first `needle` of line `row` (1-based), and the position
-- parameters Neovim makes for it (it counts the UTF-16 columns itself).
local function at(row, needle)
  local text = vim.api.nvim_buf_get_lines(0, row - 1, row, true)[1]
  local byte = string.find(text, needle, 1, true)
  vim.api.nvim_win_set_cursor(0, { row, byte - 1 })
  return vim.lsp.util.make_position_params()
end

local function run()
  local client_id = vim.lsp.start_client({ name = 'chunkdb', cmd = { server }, root_dir = root })
  if not check('start the server', client_id ~= nil, 'start_client returned nil') then return end
  vim.cmd('edit ' .. root .. '/src/report.rs')
  local buf = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(buf, client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  local ready = vim.wait(30000, function()
    return client.server_capabilities ~= nil and client.server_capabilities.definitionProvider == true
  end, 20)
  if not check('initialize', ready, 'no capabilities after 30 s') then return end

  -- Go to definition of `Point`, written after a character of two UTF-16 units.
  local definition
  vim.wait(30000, function()
    local replies = vim.lsp.buf_request_sync(buf, 'textDocument/definition', at(4, 'Point'), 5000)
    local reply = replies and replies[client_id]
    definition = reply and reply.result
    return definition ~= nil and definition ~= vim.NIL
  end, 50)
  local target = definition and (definition.uri and definition or definition[1])
  check('definition', target ~= nil and vim.endswith(target.uri, '/src/shapes.rs')
    and target.range.start.line == 3 and target.range.start.character == 11,
    'got ' .. vim.inspect(definition))

  -- Break the import: a diagnostic appears on it.
  vim.api.nvim_buf_set_lines(buf, 0, 1, true, { 'use crate::shapes::{areaa, Point};' })
  local appeared = vim.wait(30000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
  local diagnostics = vim.diagnostic.get(buf)
  check('diagnostic appears', appeared and diagnostics[1].lnum == 0
    and string.find(diagnostics[1].message, '`areaa`', 1, true) ~= nil,
    'got ' .. vim.inspect(diagnostics))

  -- Fix it: the diagnostic clears.
  vim.api.nvim_buf_set_lines(buf, 0, 1, true, { 'use crate::shapes::{area, Point};' })
  local cleared = vim.wait(30000, function() return #vim.diagnostic.get(buf) == 0 end, 20)
  check('diagnostic clears', cleared, 'still ' .. vim.inspect(vim.diagnostic.get(buf)))

  -- Hover on `Point`: its signature and docs.
  local replies = vim.lsp.buf_request_sync(buf, 'textDocument/hover', at(4, 'Point'), 5000)
  local hover = replies and replies[client_id] and replies[client_id].result
  local shown = hover and hover.contents and hover.contents.value or ''
  check('hover', string.find(shown, 'pub struct Point', 1, true) ~= nil
    and string.find(shown, 'A point in the plane.', 1, true) ~= nil, 'got ' .. vim.inspect(hover))

  vim.lsp.stop_client(client_id)
  check('shut down', vim.wait(10000, function() return client.is_stopped() end, 20), 'still running')
end

local ok, err = pcall(run)
if not ok then check('script', false, tostring(err)) end
finish()
