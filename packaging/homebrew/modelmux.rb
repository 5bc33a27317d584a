# Homebrew formula for ModelMux (tap: yarenty/tap).
#
#   brew install yarenty/tap/modelmux
#   brew services start modelmux
#   brew test modelmux
#
# url/sha256 name the release sdist (`python -m build --sdist`, uploaded to the GitHub release);
# packaging/homebrew/update-formula.sh rewrites both from the built file. The resources are the
# sdists of every runtime dependency (google-auth with its requests transport, which
# modelmux.auth.google uses), pinned to versions the test suite runs against; refresh them with
# `brew update-python-resources modelmux` when pyproject.toml's dependencies change.
class Modelmux < Formula
  include Language::Python::Virtualenv

  desc "OpenAI-compatible AI gateway in front of many model providers"
  homepage "https://github.com/yarenty/modelmux"
  url "https://github.com/yarenty/modelmux/releases/download/v2.0.0/modelmux-2.0.0.tar.gz"
  sha256 "4bb67512ea7beb4a27cc50322220ba265e331832d3710f0b12c818a2a2c2936b"
  license any_of: ["MIT", "Apache-2.0"]
  head "https://github.com/yarenty/modelmux.git", branch: "main"

  # google-auth's crypto backend; Homebrew's prebuilt formula instead of a Rust build here.
  depends_on "cryptography"
  depends_on "python@3.12"

  resource "certifi" do
    url "https://files.pythonhosted.org/packages/source/c/certifi/certifi-2026.5.20.tar.gz"
    sha256 "69dea482ab64caa7b9f6aba1c6bf48bb6a5448d1c0f1b17ab42ad8c763a5344d"
  end

  resource "charset-normalizer" do
    url "https://files.pythonhosted.org/packages/source/c/charset-normalizer/charset_normalizer-3.4.7.tar.gz"
    sha256 "ae89db9e5f98a11a4bf50407d4363e7b09b31e55bc117b4f7d80aab97ba009e5"
  end

  resource "google-auth" do
    url "https://files.pythonhosted.org/packages/source/g/google-auth/google_auth-2.62.2.tar.gz"
    sha256 "046c61a72d3a847d6df6417a7f0d5cf054e3b82bbcb54fb1e69d47880964049c"
  end

  resource "h11" do
    url "https://files.pythonhosted.org/packages/source/h/h11/h11-0.16.0.tar.gz"
    sha256 "4e35b956cf45792e4caa5885e69fba00bdbc6ffafbfa020300e549b208ee5ff1"
  end

  resource "h2" do
    url "https://files.pythonhosted.org/packages/source/h/h2/h2-4.4.1.tar.gz"
    sha256 "4e866ffb1a869ae14dd9b5e6beb5c24a13da0495ad72b65925ded182521c1516"
  end

  resource "hpack" do
    url "https://files.pythonhosted.org/packages/source/h/hpack/hpack-4.2.0.tar.gz"
    sha256 "0895cfa3b5531fc65fe439c05eb65144f123bf7a394fcaa56aa423548d8e45c0"
  end

  resource "hyperframe" do
    url "https://files.pythonhosted.org/packages/source/h/hyperframe/hyperframe-6.1.0.tar.gz"
    sha256 "f630908a00854a7adeabd6382b43923a4c4cd4b821fcb527e6ab9e15382a3b08"
  end

  resource "idna" do
    url "https://files.pythonhosted.org/packages/source/i/idna/idna-3.20.tar.gz"
    sha256 "a7db850025b95ded1eae8a46181a1a6c56c92c96f0e2b005d9ff8dc0210cab44"
  end

  resource "msgspec" do
    url "https://files.pythonhosted.org/packages/source/m/msgspec/msgspec-0.22.0.tar.gz"
    sha256 "0a13624a4969159fe35d8c2a3d377b2b61bbd8585e327440d5e52725affcce38"
  end

  resource "pyasn1" do
    url "https://files.pythonhosted.org/packages/source/p/pyasn1/pyasn1-0.6.3.tar.gz"
    sha256 "697a8ecd6d98891189184ca1fa05d1bb00e2f84b5977c481452050549c8a72cf"
  end

  resource "pyasn1-modules" do
    url "https://files.pythonhosted.org/packages/source/p/pyasn1-modules/pyasn1_modules-0.4.2.tar.gz"
    sha256 "677091de870a80aae844b1ca6134f54652fa2c8c5a52aa396440ac3106e941e6"
  end

  resource "requests" do
    url "https://files.pythonhosted.org/packages/source/r/requests/requests-2.34.2.tar.gz"
    sha256 "f288924cae4e29463698d6d60bc6a4da69c89185ad1e0bcc4104f584e960b9ed"
  end

  resource "urllib3" do
    url "https://files.pythonhosted.org/packages/source/u/urllib3/urllib3-2.7.0.tar.gz"
    sha256 "231e0ec3b63ceb14667c67be60f2f2c40a518cb38b03af60abc813da26505f4c"
  end

  resource "uvloop" do
    url "https://files.pythonhosted.org/packages/source/u/uvloop/uvloop-0.23.0.tar.gz"
    sha256 "28d160f51ab4da3b187063652e643dea6831072add4adc1e6d62afbe73b6be27"
  end

  def install
    # The native SSE codec is required: a failed Cython build fails the install instead of
    # quietly installing the pure-Python fallback. (setuptools and Cython come from pip's
    # build isolation, as pyproject.toml's [build-system] asks.)
    ENV["MODELMUX_REQUIRE_NATIVE"] = "1"
    virtualenv_install_with_resources
    pkgshare.install "packaging/config.toml.example"
  end

  def caveats
    <<~EOS
      ModelMux reads ~/.config/modelmux/config.toml. Start from the example:
        mkdir -p ~/.config/modelmux
        cp #{opt_pkgshare}/config.toml.example ~/.config/modelmux/config.toml
      Without a config file it serves the built-in mock model on http://127.0.0.1:3000.
      The service logs to #{var}/log/modelmux.log.
    EOS
  end

  service do
    run [opt_bin/"modelmux", "serve"]
    keep_alive true
    log_path var/"log/modelmux.log"
    error_log_path var/"log/modelmux.log"
  end

  test do
    assert_match "modelmux #{version} (native (", shell_output("#{bin}/modelmux --version")

    port = free_port
    (testpath/"config.toml").write <<~TOML
      [server]
      host = "127.0.0.1"
      port = #{port}

      [[provider]]
      name = "demo"
      type = "mock"
      models = ["mock"]
      text = "Hello from brew test"
    TOML

    pid = spawn bin/"modelmux", "serve", "--config", testpath/"config.toml"
    begin
      health = shell_output("curl --silent --show-error --fail --retry 30 --retry-delay 1 " \
                            "--retry-connrefused http://127.0.0.1:#{port}/health")
      assert_match(/"status":\s*"ok"/, health)

      request = '{"model": "mock", "messages": [{"role": "user", "content": "Hi"}]}'
      answer = shell_output("curl --silent --show-error --fail -H 'content-type: application/json' " \
                            "-d '#{request}' http://127.0.0.1:#{port}/v1/chat/completions")
      assert_match "Hello from brew test", answer
    ensure
      Process.kill("TERM", pid)
      _, status = Process.wait2(pid)
    end
    assert_equal 0, status.exitstatus, "SIGTERM should drain and exit 0"
  end
end
